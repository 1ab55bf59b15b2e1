"""The shared history of each room: user and bot messages, tool calls and their results."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nanofolks.secrets.sanitize import sanitize
from nanofolks.store.db import Database


@dataclass
class Message:
    room_id: int
    author: str  # "user" or a bot handle
    role: str  # user | assistant | tool | system
    content: str
    kind: str = "chat"  # chat | tool_call | tool_result | note
    platform: str = "cli"
    sender: str = ""  # a label: the display name the person gave (anyone can take any name)
    person: str = ""  # who wrote a user message (nanofolks.identity): "telegram:12345", the terminal's owner
    turn_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    id: int | None = None


class MessageRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, msg: Message) -> Message:
        with self.db.write() as conn:
            _insert(conn, msg)
        return msg

    def add_turn_message(self, msg: Message) -> bool:
        """Store a turn's user message, unless that turn stored it already (re-run after a crash): one copy.
        Either way `msg.id` is the stored message's id."""
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM messages WHERE turn_id = ? AND role = 'user' ORDER BY id LIMIT 1",
                               (msg.turn_id,)).fetchone() if msg.turn_id else None
            if row is not None:
                msg.id = int(row[0])
                return False
            _insert(conn, msg)
        return True

    def add_many(self, msgs: Sequence[Message], then: Callable[[sqlite3.Connection], object] | None = None) -> None:
        """Store messages in one transaction. `then(conn)` runs inside it, so that the caller's own writes
        (the gateway marking its inbox row answered) and these messages are kept or lost together."""
        with self.db.write() as conn:
            for msg in msgs:
                _insert(conn, msg)
            if then is not None:
                then(conn)

    def recent(self, room_id: int, limit: int, kinds: tuple[str, ...] = ("chat",),
               up_to: int | None = None) -> list[Message]:
        """The last `limit` messages of a room, oldest first; with `up_to`, those up to that message id
        (a turn answers the message it was started for, not the room's newest)."""
        marks = ",".join("?" * len(kinds))
        rows = self.db.query(
            f"SELECT * FROM messages WHERE room_id = ? AND kind IN ({marks}) AND id <= ? ORDER BY id DESC LIMIT ?",
            (room_id, *kinds, up_to if up_to is not None else 2**62, limit),
        )
        return [self._message(r) for r in reversed(rows)]

    def after(self, room_id: int, after_id: int, limit: int = 200, kinds: tuple[str, ...] = ("chat",)) -> list[Message]:
        """The room's messages stored after message `after_id`, oldest first (a page following the room)."""
        marks = ",".join("?" * len(kinds))
        rows = self.db.query(f"SELECT * FROM messages WHERE room_id = ? AND kind IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
                             (room_id, *kinds, after_id, limit))
        return [self._message(r) for r in rows]

    def count(self, room_id: int) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM messages WHERE room_id = ?", (room_id,))
        return int(row[0]) if row else 0

    def by_turn(self, turn_id: str) -> list[Message]:
        rows = self.db.query("SELECT * FROM messages WHERE turn_id = ? ORDER BY id", (turn_id,))
        return [self._message(r) for r in rows]

    @staticmethod
    def _message(row: Any) -> Message:
        return Message(
            id=row["id"], room_id=row["room_id"], author=row["author"], role=row["role"], kind=row["kind"],
            content=row["content"], platform=row["platform"], sender=row["sender"], person=row["person"],
            turn_id=row["turn_id"],
            meta=json.loads(row["meta"]), created_at=row["created_at"],
        )


def _insert(conn: sqlite3.Connection, msg: Message) -> None:
    msg.created_at = msg.created_at or time.time()
    msg.content = sanitize(msg.content)  # the last line: no secret is ever stored in a room
    msg.id = conn.execute(
        "INSERT INTO messages (room_id, author, role, kind, content, platform, sender, person, turn_id, meta,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (msg.room_id, msg.author, msg.role, msg.kind, msg.content, msg.platform, msg.sender, msg.person, msg.turn_id,
         json.dumps(msg.meta), msg.created_at),
    ).fetchone()[0]
