"""What finding secrets costs: the detector (nanofolks.secrets.detect.find) and the sanitizer every way
out uses, per typical chat message and per 100 KB, against one plain regex scan of the same text.

    python bench/secrets_bench.py --json [--rounds 2000]

- typical: chat messages of three sentences from the labelled set (tests/unit/secret_samples.py), each
  timed alone; p50/p99 per message in ms.
- 100 KB: the repository's Markdown docs (prose) and its Python sources (code), each cut to 100 KB.
- baseline: one format's regular expression (a GitHub token, `ghp_[A-Za-z0-9]{36}`) searched over the
  same text, what a scanner for a single format costs; ratio = detector / baseline, so about the number
  of single-format scans the whole detector (28 rules) is worth. The machine is shared: min_ms (the best
  of the rounds, the cost when nothing preempted it) beside p50_ms.
- model_request: sanitize_messages over a request of 40 such messages plus a 2,000-character system
  prompt, what every model call pays (p50 ms): cold (nothing seen before) and warm (the history was
  sanitized at the previous call: the sanitizer keeps the last 4,096 short texts).
- quality: the labelled set's recall (positives caught with their kind) and look-alikes touched.
The goals (issue 13): under 0.2 ms for a typical message, under 5 ms for 100 KB."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile, report  # noqa: E402
from nanofolks.secrets import sanitize as sanitizer  # noqa: E402
from nanofolks.secrets.detect import find  # noqa: E402
from nanofolks.secrets.sanitize import remember, sanitize, sanitize_messages  # noqa: E402
from tests.unit.secret_samples import LOOKALIKES, POSITIVES  # noqa: E402

ONE_FORMAT = re.compile(r"ghp_[A-Za-z0-9]{36}")


def timed(fn: Callable[[str], object], text: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(text)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def per_message(fn: Callable[[str], object], messages: list[str], rounds: int) -> dict[str, float]:
    samples = [s for text in messages for s in timed(fn, text, max(1, rounds // len(messages)))]
    return {"p50_ms": round(percentile(samples, 0.5), 4), "p99_ms": round(percentile(samples, 0.99), 4)}


def per_100kb(fn: Callable[[str], object], text: str, rounds: int = 40) -> dict[str, float]:
    samples = timed(fn, text, rounds)
    return {"p50_ms": round(percentile(samples, 0.5), 3), "min_ms": round(min(samples), 3)}


def corpus(pattern: str, size: int = 100_000) -> str:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(ROOT.glob(pattern)))
    return (text * (size // max(1, len(text)) + 1))[:size]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    # Typical chat messages, 100-300 characters: three sentences each, from the look-alikes (questions,
    # hashes, links, phone numbers) and the positives' sentences with a harmless word for the secret.
    sentences = [t for t in LOOKALIKES if len(t) < 150] + [m.format(s="tomorrow") for _, m, _ in POSITIVES]
    typical = [" ".join(sentences[i:i + 3]) for i in range(0, len(sentences) - 2, 3)]
    for i in range(20):  # a vault of twenty known values, as the sanitizer carries in a real process
        remember(f"known-secret-value-{i:02d}-x9", "{{known}}")
    result: dict[str, object] = {
        "typical_chars_avg": round(sum(map(len, typical)) / len(typical)),
        "typical_detect": per_message(find, typical, args.rounds),
        # the sanitizer's own work, without its cache of texts already seen
        "typical_sanitize": per_message(sanitizer._sanitize, typical, args.rounds),
        "typical_baseline": per_message(ONE_FORMAT.search, typical, args.rounds),
    }
    request = [{"role": "system", "content": corpus("docs/architecture.md", 2000)}] + [
        {"role": "user" if i % 2 else "assistant", "content": typical[i % len(typical)]} for i in range(40)]
    def cold(_: str) -> None:
        sanitizer._sanitized.cache_clear()
        sanitize_messages(request)

    warm = [s for _ in range(200) for s in timed(lambda _: sanitize_messages(request), "", 1)]
    result["model_request"] = {"messages": len(request), "cold_p50_ms": round(percentile(timed(cold, "", 100), 0.5), 3),
                               "warm_p50_ms": round(percentile(warm, 0.5), 3)}
    for name, pattern in (("prose_100kb", "docs/*.md"), ("code_100kb", "nanofolks/**/*.py")):
        text = corpus(pattern)
        detect, base = per_100kb(find, text), per_100kb(ONE_FORMAT.search, text)
        result[name] = {"detect": detect, "sanitize": per_100kb(sanitize, text), "baseline": base,
                        "ratio_min": round(detect["min_ms"] / base["min_ms"], 1)}
    typical_detect = result["typical_detect"]["p50_ms"]  # type: ignore[index]
    result["typical_ratio"] = round(typical_detect / result["typical_baseline"]["p50_ms"], 1)  # type: ignore[index]
    result["load_average"] = round(os.getloadavg()[0], 1)
    caught = sum((kind, secret) in [(f.kind, f.value(msg.format(s=secret))) for f in find(msg.format(s=secret))]
                 for kind, msg, secret in POSITIVES)
    result["quality"] = {"positives": len(POSITIVES), "caught": caught, "lookalikes": len(LOOKALIKES),
                         "lookalikes_touched": sum(bool(find(t)) for t in LOOKALIKES)}
    report(result, args.json)


if __name__ == "__main__":
    main()
