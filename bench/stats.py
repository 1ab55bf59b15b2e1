"""What the benchmarks share: percentiles of latency samples, and how a result is printed."""

from __future__ import annotations

import json
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile (0 <= q <= 1) of the samples."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(result: dict[str, Any], as_json: bool) -> None:
    """One JSON line with --json (for scripts), indented JSON otherwise."""
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))
