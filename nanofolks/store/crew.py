"""The crew's changes (hired, retired, supervisor) and the hire proposals waiting for a user's yes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from nanofolks.store.db import Database


@dataclass
class CrewChange:
    handle: str
    action: str  # hired | retired | supervisor
    actor: str  # who did it: "cli", or the person who agreed in a room
    detail: str
    created_at: float


@dataclass
class PendingHire:
    room_id: int
    sender: str  # who asked for the hire: only they can agree to it
    turn_id: str  # the turn that proposed it: agreeing takes a later message
    proposal: list[dict[str, Any]]  # the candidates, as drafted
    created_at: float


class CrewRepo:
    def __init__(self, db: Database):
        self.db = db

    def record(self, handle: str, action: str, actor: str, detail: str = "", now: float | None = None) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT INTO crew_changes (handle, action, actor, detail, created_at) VALUES (?, ?, ?, ?, ?)",
                         (handle, action, actor, detail, time.time() if now is None else now))

    def count_since(self, action: str, since: float) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM crew_changes WHERE action = ? AND created_at >= ?",
                                (action, since))
        return int(row[0]) if row else 0

    def changes(self, handle: str | None = None) -> list[CrewChange]:
        rows = self.db.query("SELECT handle, action, actor, detail, created_at FROM crew_changes"
                             + (" WHERE handle = ?" if handle else "") + " ORDER BY id", (handle,) if handle else ())
        return [CrewChange(**dict(r)) for r in rows]

    def propose(self, room_id: int, sender: str, turn_id: str, proposal: list[dict[str, Any]]) -> None:
        """Keep the room's proposal, replacing any earlier one (the newest draft is what the user sees)."""
        with self.db.write() as conn:
            conn.execute("INSERT INTO hire_proposals (room_id, sender, turn_id, proposal, created_at)"
                         " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET sender = excluded.sender,"
                         " turn_id = excluded.turn_id, proposal = excluded.proposal, created_at = excluded.created_at",
                         (room_id, sender, turn_id, json.dumps(proposal, ensure_ascii=False), time.time()))

    def pending(self, room_id: int) -> PendingHire | None:
        row = self.db.query_one("SELECT * FROM hire_proposals WHERE room_id = ?", (room_id,))
        if row is None:
            return None
        return PendingHire(row["room_id"], row["sender"], row["turn_id"], json.loads(row["proposal"]),
                           row["created_at"])

    def take(self, room_id: int, turn_id: str) -> PendingHire | None:
        """Remove and return the room's proposal, unless it was made by this very turn (a proposal is never
        agreed to by the message that asked for it). One caller wins when two race."""
        with self.db.write() as conn:
            row = conn.execute("DELETE FROM hire_proposals WHERE room_id = ? AND turn_id != ? RETURNING *",
                               (room_id, turn_id)).fetchone()
        if row is None:
            return None
        return PendingHire(row["room_id"], row["sender"], row["turn_id"], json.loads(row["proposal"]),
                           row["created_at"])

    def drop(self, room_id: int) -> bool:
        with self.db.write() as conn:
            return conn.execute("DELETE FROM hire_proposals WHERE room_id = ?", (room_id,)).rowcount > 0
