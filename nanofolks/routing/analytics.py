"""`routing analytics`: calls, tokens and cost per tier and per day from the usage table, beside what the same
tokens would have cost on the top tier's model (litellm's price map), so the savings are measured on the
user's own traffic. Calls to a model litellm cannot price count their tokens but no cost, and are named."""

from __future__ import annotations

import time
from typing import Any

from nanofolks.config.schema import TIERS, Config, is_local
from nanofolks.llm.env import import_litellm
from nanofolks.llm.spend import day_start
from nanofolks.routing.tiers import tier_model
from nanofolks.store.usage import UsageRepo

_SUMS = ("calls", "prompt_tokens", "completion_tokens", "cost", "top_cost", "unpriced", "failed")


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars for these tokens on `model` by litellm's price map; 0 for a local model; None when unknown."""
    if is_local(model):
        return 0.0
    litellm = import_litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except Exception:  # litellm raises for a model missing from its map
        return None
    return float(prompt_cost + completion_cost)


def top_model(config: Config) -> str:
    """The priciest model among the tiers (a million tokens each way), or the crew's default model."""
    models = list(dict.fromkeys(m for t in TIERS if (m := tier_model(config, t)))) or [config.agents.defaults.model]
    priced = [(p, m) for m in models if (p := price(m, 1_000_000, 1_000_000)) is not None]
    return max(priced)[1] if priced else models[-1]


def analytics(config: Config, usage: UsageRepo, days: int, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    since = day_start(now - (days - 1) * 86_400)
    top = top_model(config)
    rows = usage.by_day_tier_model(since)
    for row in rows:
        row["tier"] = row["tier"] or "none"
        row["top_cost"] = 0.0 if row["unpriced"] else price(top, row["prompt_tokens"], row["completion_tokens"])
        if is_local(str(row["model"])):
            row["unpriced"] = 0  # the local model is free, not unknown
    by_tier: dict[str, dict[str, Any]] = {}
    for row in rows:
        into = by_tier.setdefault(str(row["tier"]), dict.fromkeys(_SUMS, 0))
        for key in _SUMS:
            into[key] += row[key] or 0
    total = {key: sum(t[key] for t in by_tier.values()) for key in _SUMS}
    top_known = all(row["top_cost"] is not None for row in rows)
    unpriced = sorted({str(r["model"]) for r in rows if r["unpriced"]})
    notes = []
    if unpriced:
        notes.append(f"litellm has no price for {', '.join(unpriced)}: their calls count tokens but no cost, "
                     "and are left out of the comparison.")
    if not top_known:
        notes.append(f"litellm has no price for the top model {top}: no comparison.")
    savings = total["top_cost"] - total["cost"] if top_known and rows else None
    return {
        "days": days,
        "since": time.strftime("%Y-%m-%d", time.localtime(since)),
        "top_model": top,
        "rows": rows,
        "by_tier": by_tier,
        "total": {**total, "savings": savings,
                  "savings_pct": round(100 * savings / total["top_cost"], 1) if savings and total["top_cost"] else None},
        "unpriced_models": unpriced,
        "notes": notes,
    }
