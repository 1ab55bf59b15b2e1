"""The activity timeline: everything the crew does, from one query over the tables that already record it
(messages, the work log: tool runs, delegations, files, tasks, routines, heartbeats) and `activity`, which
keeps only what nothing else records (memory consolidation, errors). Nothing is written twice."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nanofolks.secrets.sanitize import sanitize
from nanofolks.store.db import Database

OWN_KINDS = ("consolidation", "error")
SUMMARY_CHARS = 300


@dataclass(frozen=True)
class Cursor:
    """The newest row seen of each source; a timeline `after` it has only what came since."""

    message: int = 0
    work: int = 0
    own: int = 0

    def text(self) -> str:
        return f"{self.message}.{self.work}.{self.own}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """From `text()`; anything else is the start (everything is new)."""
        parts = text.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return cls()
        return cls(*(int(p) for p in parts))

    def past(self, items: list[ActivityItem]) -> Cursor:
        """This cursor moved past `items`."""
        newest = {source: max([i.id for i in items if i.source == source], default=0) for source in "mwa"}
        return Cursor(max(self.message, newest["m"]), max(self.work, newest["w"]), max(self.own, newest["a"]))


@dataclass
class ActivityItem:
    source: str  # m (a message), w (a work log entry), a (an activity row)
    id: int
    at: float
    kind: str  # message | tool | delegation | file | task | routine | heartbeat | consolidation | error
    room: str
    bot: str  # the bot, or the person for a message of theirs
    summary: str
    ok: bool


# Each source is read newest first from its own primary key (a room's years of messages are never scanned
# whole), then the three are merged by time.
_SOURCES = {
    "m": ("SELECT 'm' AS source, id, created_at AS at, 'message' AS kind, room_id,"
          " CASE WHEN role = 'user' THEN sender ELSE author END AS who, substr(content, 1, ?) AS summary, 1 AS ok"
          " FROM messages WHERE kind = 'chat' AND id > ?", "CASE WHEN role = 'user' THEN sender ELSE author END"),
    "w": ("SELECT 'w' AS source, id, created_at AS at, kind, room_id, bot AS who, summary, ok FROM worklog"
          " WHERE id > ?", "bot"),
    "a": ("SELECT 'a' AS source, id, at, kind, room_id, bot AS who, summary, ok FROM activity WHERE id > ?", "bot"),
}


class ActivityRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, kind: str, summary: str, room_id: int | None = None, bot: str = "", ok: bool = True) -> None:
        if kind not in OWN_KINDS:
            raise ValueError(f"unknown activity kind {kind!r}: messages and work log entries are recorded where they happen")
        with self.db.write() as conn:
            conn.execute("INSERT INTO activity (at, kind, room_id, bot, summary, ok) VALUES (?, ?, ?, ?, ?, ?)",
                         (time.time(), kind, room_id, bot, sanitize(summary)[:SUMMARY_CHARS], int(ok)))

    def timeline(self, room_id: int | None = None, who: str | None = None, after: Cursor | None = None,
                 limit: int = 100) -> list[ActivityItem]:
        """Newest first; with `after`, only what came since that cursor."""
        after = after or Cursor()
        parts, params = [], []
        for source, last in (("m", after.message), ("w", after.work), ("a", after.own)):
            select, who_column = _SOURCES[source]
            sql, args = select, ([SUMMARY_CHARS] if source == "m" else []) + [last]
            if room_id is not None:
                sql, args = sql + " AND room_id = ?", [*args, room_id]
            if who is not None:
                sql, args = sql + f" AND {who_column} = ?", [*args, who]
            parts.append(f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) AS {source}_newest")
            params += [*args, limit]
        rows = self.db.query(
            f"SELECT t.*, COALESCE(r.name, '') AS room FROM ({' UNION ALL '.join(parts)}) t"
            " LEFT JOIN rooms r ON r.id = t.room_id ORDER BY t.at DESC, t.id DESC LIMIT ?", (*params, limit))
        return [_item(r) for r in rows]


def _item(row: Any) -> ActivityItem:
    return ActivityItem(source=row["source"], id=int(row["id"]), at=float(row["at"]), kind=row["kind"],
                        room=row["room"], bot=row["who"], summary=row["summary"], ok=bool(row["ok"]))
