"""Updates the adapters could not parse (a number where text belongs, a missing chat...): recorded with
the reason, so the platform can be told they arrived and the poller moves on."""

from __future__ import annotations

import time

from nanofolks.channels.messages import Rejected
from nanofolks.store.db import Database


class RejectedRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, update: Rejected) -> int:
        with self.db.write() as conn:
            return int(conn.execute(
                "INSERT INTO rejected_updates (platform, account, ref, reason, raw, at) VALUES (?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (update.platform, update.account, update.ref, update.reason, update.raw, time.time()),
            ).fetchone()[0])

    def recent(self, limit: int = 20) -> list[dict]:
        rows = self.db.query("SELECT * FROM rejected_updates ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """{platform: rejected updates} for `nanofolks status`."""
        return {r["platform"]: r["n"] for r in
                self.db.query("SELECT platform, COUNT(*) n FROM rejected_updates GROUP BY platform")}
