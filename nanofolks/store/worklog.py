"""The work log: what the crew did, room by room. Who, when, what, and links to what it produced.

Kinds: task (a task completed), tool (a tool run, with its result or error), delegation, file (a file
a bot wrote), routine (a routine run), heartbeat (a heartbeat that spoke up)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from nanofolks.secrets.sanitize import sanitize
from nanofolks.store.db import Database

KINDS = ("task", "tool", "delegation", "file", "routine", "heartbeat")
SUMMARY_CHARS = 300
DETAIL_CHARS = 2_000


@dataclass
class WorkEntry:
    room_id: int | None
    bot: str
    kind: str
    summary: str
    detail: str = ""
    ok: bool = True
    artifacts: list[str] = field(default_factory=list)  # "file:notes/plan.md", "task:#3", "run:12", "message:40"
    turn_id: str = ""
    created_at: float = 0.0
    id: int | None = None
    room: str = ""  # the room's name, filled in by reads


def insert(conn: sqlite3.Connection, entry: WorkEntry) -> None:
    """Add an entry inside the caller's transaction (a task change, a run's delivery)."""
    if entry.kind not in KINDS:
        raise ValueError(f"unknown work log kind {entry.kind!r}")
    entry.created_at = entry.created_at or time.time()
    entry.summary, entry.detail = sanitize(entry.summary), sanitize(entry.detail)  # no secret is ever stored
    entry.id = conn.execute(
        "INSERT INTO worklog (room_id, bot, kind, summary, detail, ok, artifacts, turn_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (entry.room_id, entry.bot, entry.kind, entry.summary[:SUMMARY_CHARS], entry.detail[:DETAIL_CHARS],
         int(entry.ok), json.dumps(entry.artifacts), entry.turn_id, entry.created_at)).fetchone()[0]


class WorkLogRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, entry: WorkEntry) -> WorkEntry:
        with self.db.write() as conn:
            insert(conn, entry)
        return entry

    def list(self, room_id: int | None = None, bot: str | None = None, since: float | None = None,
             limit: int | None = None) -> list[WorkEntry]:
        """Entries oldest first; with `limit`, the newest `limit` of them."""
        where, params = _filters(room_id, bot, since)
        sql = f"{_SELECT} {where} ORDER BY w.id DESC" + (" LIMIT ?" if limit else "")
        rows = self.db.query(sql, (*params, limit) if limit else tuple(params))
        return [_entry(r) for r in reversed(rows)]

    def search(self, match: str, limit: int, room_id: int | None = None, bot: str | None = None,
               since: float | None = None) -> list[WorkEntry]:
        """Entries matching a full-text query (memory search's syntax), best first."""
        where, params = _filters(room_id, bot, since)
        hits = self.db.dialect.text_matches("worklog")
        rows = self.db.query(
            f"{_SELECT} JOIN ({hits}) AS hit ON hit.id = w.id {where} ORDER BY hit.score LIMIT ?",
            (match, *params, limit))
        return [_entry(r) for r in rows]


_SELECT = "SELECT w.*, COALESCE(rooms.name, '') AS room FROM worklog w LEFT JOIN rooms ON rooms.id = w.room_id"


def _filters(room_id: int | None, bot: str | None, since: float | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for clause, value in (("w.room_id = ?", room_id), ("w.bot = ?", bot), ("w.created_at >= ?", since)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _entry(r: Any) -> WorkEntry:
    return WorkEntry(id=r["id"], room_id=r["room_id"], bot=r["bot"], kind=r["kind"], summary=r["summary"],
                     detail=r["detail"], ok=bool(r["ok"]), artifacts=json.loads(r["artifacts"]), turn_id=r["turn_id"],
                     created_at=r["created_at"], room=r["room"])
