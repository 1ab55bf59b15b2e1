"""Memory index benchmark: our VectorIndex (vectors stored in SQLite, then indexed, as the indexer does)
against bare hnswlib on the same vectors, in the same run.

Data: synthetic 384-d vectors made as a rank-24 projection plus noise, normalised. Real embeddings have a low
intrinsic dimension; i.i.d. random vectors defeat every ANN index and would say nothing (see DESIGN.md).
Recall@10 is measured against exact (brute-force) search.

    python bench/memory_bench.py --n 100000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM = 384
RANK = 24
NOISE = 0.25  # per dimension, against a signal of unit variance per dimension


def synthetic(n: int, rng: np.random.Generator, basis: np.ndarray) -> np.ndarray:
    x = rng.standard_normal((n, RANK), dtype=np.float32) @ basis
    x += NOISE * rng.standard_normal((n, DIM), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    out = np.empty((len(queries), 10), dtype=np.int64)
    for start in range(0, len(queries), 50):
        sims = queries[start:start + 50] @ data.T
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        order = np.take_along_axis(sims, top, 1).argsort(axis=1)[:, ::-1]
        out[start:start + 50] = np.take_along_axis(top, order, 1)
    return out


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]))


def timed_queries(search, queries: np.ndarray) -> tuple[list[list[int]], list[float]]:
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        times.append((time.perf_counter() - t) * 1000)
    return found, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef", type=int, default=128)  # the shipped default (memory.index.ef)
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args()

    import hnswlib

    from nanofolks.memory.index import VectorIndex
    from nanofolks.store.db import Database
    from nanofolks.store.memory import VectorRepo

    rng = np.random.default_rng(7)
    basis = rng.standard_normal((RANK, DIM), dtype=np.float32) / np.sqrt(RANK)  # unit variance per dimension
    data = synthetic(args.n, rng, basis)
    queries = synthetic(args.queries, rng, basis)
    truth = exact_top10(data, queries)

    # Bare hnswlib: the baseline.
    raw = hnswlib.Index(space="cosine", dim=DIM)
    raw.init_index(max_elements=args.n, ef_construction=args.ef_construction, M=args.m)
    t = time.perf_counter()
    raw.add_items(data, np.arange(args.n))
    raw_build_s = time.perf_counter() - t
    raw.set_ef(args.ef)
    raw.set_num_threads(1)
    raw_found, raw_times = timed_queries(lambda q: raw.knn_query(q.reshape(1, -1), k=10)[0][0].tolist(), queries)
    raw = None  # free the baseline: rss_mb below is our index (plus the data arrays)

    # Ours: vector rows into SQLite, then the index, in the indexer's batch size; queries through VectorIndex.
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db")
        repo = VectorRepo(db)
        index = VectorIndex(Path(tmp) / "memory.hnsw", DIM, "bench", args.m, args.ef_construction, args.ef)
        index.open(repo)
        batch = 1000
        t = time.perf_counter()
        label_of = np.empty(args.n, dtype=np.int64)
        for start in range(0, args.n, batch):
            chunk = data[start:start + batch]
            labels = repo.put([("message", start + i, "bench", v.tobytes()) for i, v in enumerate(chunk)])
            index.add(labels, chunk)
            label_of[start:start + len(chunk)] = labels
        insert_s = time.perf_counter() - t
        index._index.set_num_threads(1)
        position = {int(label): i for i, label in enumerate(label_of)}
        ours_found, ours_times = timed_queries(
            lambda q: [position[label] for label, _ in index.search(q, 10)], queries)
        rss_mb = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
        index.save()
        file_bytes = index.path.stat().st_size
        db_bytes = sum(f.stat().st_size for f in Path(tmp).glob("bench.db*"))
        db.close()

    raw_p50 = float(np.percentile(raw_times, 50))
    ours_p50 = float(np.percentile(ours_times, 50))
    result = {
        "n": args.n, "dim": DIM, "data": f"rank-{RANK} projection (unit variance per dim) + gaussian noise sd {NOISE}, normalised",
        "m": args.m, "ef_construction": args.ef_construction, "ef": args.ef, "queries": args.queries,
        "recall_at_10": round(recall(ours_found, truth), 4), "raw_recall_at_10": round(recall(raw_found, truth), 4),
        "query_p50_ms": round(ours_p50, 4), "query_p99_ms": round(float(np.percentile(ours_times, 99)), 4),
        "raw_hnswlib_p50_ms": round(raw_p50, 4), "raw_hnswlib_p99_ms": round(float(np.percentile(raw_times, 99)), 4),
        "ratio_vs_raw": round(ours_p50 / raw_p50, 3),
        "insert_per_s": round(args.n / insert_s, 1), "raw_insert_per_s": round(args.n / raw_build_s, 1),
        "rss_mb": round(rss_mb, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "index_bytes_per_vector": round(file_bytes / args.n, 1), "db_bytes_per_vector": round(db_bytes / args.n, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}  {v}")


if __name__ == "__main__":
    main()
