"""Small facts each channel account keeps between runs: registered-commands hash, last poll, status."""

from __future__ import annotations

import time

from nanofolks.store.db import Database


class ChannelStateRepo:
    def __init__(self, db: Database):
        self.db = db

    def get(self, platform: str, account: str, key: str) -> str | None:
        row = self.db.query_one(
            "SELECT value FROM channel_state WHERE platform = ? AND account = ? AND key = ?", (platform, account, key)
        )
        return row["value"] if row else None

    def set(self, platform: str, account: str, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO channel_state (platform, account, key, value, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, account, key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (platform, account, key, value, time.time()),
            )

    def all(self) -> dict[tuple[str, str], dict[str, tuple[str, float]]]:
        """{(platform, account): {key: (value, updated_at)}}."""
        out: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}
        for r in self.db.query("SELECT * FROM channel_state ORDER BY platform, account, key"):
            out.setdefault((r["platform"], r["account"]), {})[r["key"]] = (r["value"], r["updated_at"])
        return out
