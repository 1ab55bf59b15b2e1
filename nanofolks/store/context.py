"""A room's context in its history: where what is sent to models starts, the summary of what came
before, and the notices given. Markers are messages of their own kinds, so the room's history keeps them
in order with everything else; models and memory search read only the kinds they always read.

Moving the start (a compaction, a reset) is a compare-and-set on the room's version: the marker is
written only if nobody moved it since the caller read the room. Appending a message never conflicts, and a
marker covers messages up to an id, so whatever was appended meanwhile stays in the context."""

from __future__ import annotations

from dataclasses import dataclass

from nanofolks.store.db import Database
from nanofolks.store.messages import Message, MessageRepo, _insert

SUMMARY = "summary"  # the summary of every message up to meta.through_id (role assistant, never user/system)
START = "context_start"  # no summary: the context starts after meta.through_id (token-limit, reset)
NOTICE = "context_notice"  # the user was told the context is filling up
MARKERS = (SUMMARY, START)
# What a summary reads: the conversation, specialists' answers, tool calls and their results.
CONVERSATION_KINDS = ("chat", "consult", "tool_call", "tool_result")


@dataclass
class ContextState:
    room_id: int
    version: int  # the room's version when read: the compare-and-set's expectation
    after_id: int  # messages with a greater id are the live context
    marker_id: int  # the marker that set it (0: none yet)
    summary: Message | None  # the current summary, if the context starts with one
    noticed: bool  # the user was told since the context last moved


class ContextRepo:
    def __init__(self, db: Database):
        self.db = db

    def state(self, room_id: int) -> ContextState:
        room = self.db.query_one("SELECT version FROM rooms WHERE id = ?", (room_id,))
        if room is None:
            raise KeyError(room_id)
        row = self.db.query_one(
            "SELECT * FROM messages WHERE room_id = ? AND kind IN (?, ?) ORDER BY id DESC LIMIT 1",
            (room_id, *MARKERS))
        marker = MessageRepo._message(row) if row else None
        marker_id = (marker.id or 0) if marker else 0
        noticed = self.db.query_one(
            "SELECT 1 FROM messages WHERE room_id = ? AND kind = ? AND id > ? LIMIT 1", (room_id, NOTICE, marker_id))
        return ContextState(
            room_id=room_id, version=int(room[0]), after_id=int(marker.meta["through_id"]) if marker else 0,
            marker_id=marker_id, summary=marker if marker and marker.kind == SUMMARY else None,
            noticed=noticed is not None)

    def since(self, room_id: int, after_id: int, kinds: tuple[str, ...] = ("chat",), limit: int = -1,
              through_id: int | None = None) -> list[Message]:
        """The room's messages of `kinds` after `after_id` (up to `through_id`), the newest `limit` (all when
        negative), oldest first."""
        marks = ",".join("?" * len(kinds))
        upper = "" if through_id is None else " AND id <= ?"
        rows = self.db.query(
            f"SELECT * FROM messages WHERE room_id = ? AND id > ?{upper} AND kind IN ({marks})"
            f" ORDER BY id DESC{' LIMIT ?' if limit >= 0 else ''}",
            (room_id, after_id, *(() if through_id is None else (through_id,)), *kinds,
             *((limit,) if limit >= 0 else ())))
        return [MessageRepo._message(r) for r in reversed(rows)]

    def count_since(self, room_id: int, after_id: int, through_id: int | None = None) -> int:
        upper = "" if through_id is None else " AND id <= ?"
        row = self.db.query_one(f"SELECT COUNT(*) FROM messages WHERE room_id = ? AND id > ?{upper} AND kind = 'chat'",
                                (room_id, after_id, *(() if through_id is None else (through_id,))))
        return int(row[0]) if row else 0

    def summaries(self, room_id: int) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM messages WHERE room_id = ? AND kind = ?", (room_id, SUMMARY))
        return int(row[0]) if row else 0

    def last_id(self, room_id: int) -> int:
        row = self.db.query_one("SELECT MAX(id) FROM messages WHERE room_id = ?", (room_id,))
        return int(row[0] or 0) if row else 0

    def move(self, expected_version: int, marker: Message) -> bool:
        """Write `marker` (a summary or a new start) if the room is still at `expected_version`."""
        with self.db.write() as conn:
            moved = conn.execute("UPDATE rooms SET version = version + 1 WHERE id = ? AND version = ?",
                                 (marker.room_id, expected_version)).rowcount
            if moved:
                _insert(conn, marker)
        return bool(moved)

    def notice(self, marker: Message) -> None:
        with self.db.write() as conn:
            _insert(conn, marker)
