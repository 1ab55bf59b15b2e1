"""What `nanofolks metrics` reads: short queries on the inbox, outbox and usage tables (read-only, so they
run beside a working gateway without waiting for its writes)."""

from __future__ import annotations

from nanofolks.store.db import Database


class MetricsRepo:
    def __init__(self, db: Database):
        self.db = db

    def queue_depths(self) -> dict[str, dict[str, int]]:
        """Per platform: inbox rows waiting for a turn, outbox rows waiting to be (or being) sent."""
        depths: dict[str, dict[str, int]] = {}
        for platform, n in self.db.query("SELECT platform, COUNT(*) FROM inbox WHERE status = 'pending' GROUP BY 1"):
            depths.setdefault(platform, {"inbox": 0, "outbox": 0})["inbox"] = n
        for platform, n in self.db.query(
                "SELECT platform, COUNT(*) FROM outbox WHERE status IN ('pending', 'sending') GROUP BY 1"):
            depths.setdefault(platform, {"inbox": 0, "outbox": 0})["outbox"] = n
        return depths

    def reply_seconds(self, since: float) -> list[float]:
        """Seconds from a message's arrival to its turn's end, for the gateway's turns done since `since`."""
        rows = self.db.query(
            "SELECT done_at - received_at FROM inbox WHERE done_at >= ? AND status = 'done'", (since,))
        return [r[0] for r in rows]

    def usage_by_tier(self, since: float) -> dict[str, dict[str, float]]:
        rows = self.db.query(
            "SELECT tier, COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0), COALESCE(SUM(cost), 0)"
            " FROM usage WHERE at >= ? GROUP BY tier ORDER BY tier", (since,))
        return {r[0] or "none": {"calls": r[1], "tokens": r[2], "cost_usd": round(r[3], 6)} for r in rows}

    def errors(self, since: float) -> dict[str, int]:
        """Failed model calls by kind, and replies that failed or may not have arrived, since `since`."""
        out = {r[0] or "error": r[1] for r in self.db.query(
            "SELECT error_kind, COUNT(*) FROM usage WHERE at >= ? AND ok = 0 GROUP BY 1", (since,))}
        for status, n in self.db.query(
                "SELECT status, COUNT(*) FROM outbox WHERE updated_at >= ? AND status IN ('failed', 'uncertain')"
                " GROUP BY 1", (since,)):
            out[f"send_{status}"] = n
        return out
