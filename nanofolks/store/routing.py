"""The tier each room's conversation sits on (sticky routing)."""

from __future__ import annotations

import time

from nanofolks.store.db import Database


class RoutingRepo:
    def __init__(self, db: Database):
        self.db = db

    def room_tier(self, room_id: int) -> str | None:
        row = self.db.query_one("SELECT tier FROM routing_rooms WHERE room_id = ?", (room_id,))
        return row[0] if row else None

    def set_room_tier(self, room_id: int, tier: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO routing_rooms (room_id, tier, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (room_id) DO UPDATE SET tier = excluded.tier, updated_at = excluded.updated_at",
                (room_id, tier, time.time()),
            )

    def room_tiers(self) -> list[tuple[str, str, float]]:
        """(room name, tier, since) for every room with a tier."""
        rows = self.db.query(
            "SELECT r.name, t.tier, t.updated_at FROM routing_rooms t JOIN rooms r ON r.id = t.room_id ORDER BY r.name"
        )
        return [(r[0], r[1], r[2]) for r in rows]
