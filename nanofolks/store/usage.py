"""Tokens, cost and outcome of every LLM call."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nanofolks.store.db import Database


@dataclass
class Usage:
    model: str
    bot: str = ""
    room_id: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    ok: bool = True
    latency_ms: float = 0.0
    error: str = ""
    tier: str = ""  # the routing tier the call served; empty without routing
    error_kind: str = ""  # the exception's class name (RateLimitError, Timeout, SpendLimitReached...)


class UsageRepo:
    def __init__(self, db: Database):
        self.db = db

    def record(self, usage: Usage) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO usage (at, model, bot, room_id, prompt_tokens, completion_tokens, cost, ok,"
                " latency_ms, error, tier, error_kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(), usage.model, usage.bot, usage.room_id, usage.prompt_tokens,
                    usage.completion_tokens, usage.cost, int(usage.ok), usage.latency_ms, usage.error,
                    usage.tier, usage.error_kind,
                ),
            )

    def spent_since(self, since: float, bot: str | None = None) -> float:
        """Dollars priced since `since` (a model without a known price adds nothing)."""
        if bot is None:
            row = self.db.query_one("SELECT COALESCE(SUM(cost), 0) FROM usage WHERE at >= ?", (since,))
        else:
            row = self.db.query_one("SELECT COALESCE(SUM(cost), 0) FROM usage WHERE at >= ? AND bot = ?", (since, bot))
        assert row is not None
        return float(row[0])

    def tell_once(self, day: str, scope: str, level: int) -> bool:
        """True the first time a spend notice (day, scope, level) is claimed, by any process."""
        with self.db.write() as conn:
            return conn.execute(
                "INSERT INTO spend_notices (day, scope, level, told_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (day, scope, level, time.time()),
            ).rowcount == 1

    def by_day_tier_model(self, since: float) -> list[dict[str, object]]:
        """Calls, tokens and cost per local day, tier and model since `since`; `unpriced` counts the
        successful calls litellm could put no price on."""
        rows = self.db.query(
            f"SELECT {self.db.dialect.local_day('at')} AS day, tier, model, COUNT(*) AS calls,"
            " SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,"
            " COALESCE(SUM(cost), 0) AS cost, COUNT(CASE WHEN ok = 1 AND cost IS NULL THEN 1 END) AS unpriced,"
            " SUM(1 - ok) AS failed FROM usage WHERE at >= ? GROUP BY 1, tier, model ORDER BY 1, tier, model",
            (since,),
        )
        return [dict(row) for row in rows]

    def totals(self) -> dict[str, float]:
        row = self.db.query_one(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
            " COALESCE(SUM(cost), 0), COALESCE(SUM(1 - ok), 0) FROM usage"
        )
        assert row is not None
        return {"calls": row[0], "prompt_tokens": row[1], "completion_tokens": row[2], "cost": row[3], "failed": row[4]}
