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


class UsageRepo:
    def __init__(self, db: Database):
        self.db = db

    def record(self, usage: Usage) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO usage (at, model, bot, room_id, prompt_tokens, completion_tokens, cost, ok,"
                " latency_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(), usage.model, usage.bot, usage.room_id, usage.prompt_tokens,
                    usage.completion_tokens, usage.cost, int(usage.ok), usage.latency_ms, usage.error,
                ),
            )

    def totals(self) -> dict[str, float]:
        row = self.db.query_one(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
            " COALESCE(SUM(cost), 0), COALESCE(SUM(1 - ok), 0) FROM usage"
        )
        assert row is not None
        return {"calls": row[0], "prompt_tokens": row[1], "completion_tokens": row[2], "cost": row[3], "failed": row[4]}
