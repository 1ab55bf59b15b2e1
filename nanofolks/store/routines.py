"""Routines, their runs, and what heartbeats already reported.

A run is one row per (routine, due time): a slot that was claimed is never claimed again, so a
routine runs once per slot however often the gateway restarts. States:

    running --answer stored (same transaction as the room's replies)--> answered
    answered --outbox rows queued (same transaction)--> delivered
    running --the turn failed--> failed;  a slot missed beyond the grace period: skipped

A row left `running` by a crash had stored no answer: the gateway runs it again at start (the turn id
is the run's, so the room keeps one copy of the message). A row left `answered` is delivered at start."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from nanofolks.store.db import Database

RUN_STATES = ("running", "answered", "delivered", "failed", "skipped")


@dataclass
class Routine:
    name: str
    message: str
    schedule: str
    room_id: int
    tz: str = ""
    bot: str = ""
    quiet: bool = False
    enabled: bool = True
    created_by: str = "cli"
    created_at: float = 0.0
    id: int | None = None
    room: str = ""  # the room's name, filled in by reads


@dataclass
class Run:
    routine_id: int
    due_at: float
    trigger: str  # schedule | missed | manual
    status: str = "running"
    answer: str = ""
    delivered_to: list[str] = field(default_factory=list)
    error: str = ""
    started_at: float = 0.0
    finished_at: float | None = None
    id: int | None = None


class RoutineRepo:
    def __init__(self, db: Database):
        self.db = db

    # --- routines ---

    def add(self, routine: Routine) -> Routine:
        now = time.time()
        routine.created_at = routine.created_at or now
        with self.db.write() as conn:
            routine.id = conn.execute(
                "INSERT INTO routines (name, message, schedule, tz, room_id, bot, quiet, enabled, created_by,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (routine.name, routine.message, routine.schedule, routine.tz, routine.room_id, routine.bot,
                 int(routine.quiet), int(routine.enabled), routine.created_by, routine.created_at, now),
            ).fetchone()[0]
        return routine

    def get(self, routine_id: int) -> Routine | None:
        row = self.db.query_one(_SELECT + " WHERE r.id = ?", (routine_id,))
        return _routine(row) if row else None

    def list(self, room_id: int | None = None, enabled_only: bool = False) -> list[Routine]:
        where = []
        params: list[Any] = []
        if room_id is not None:
            where.append("r.room_id = ?")
            params.append(room_id)
        if enabled_only:
            where.append("r.enabled = 1")
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY r.id"
        return [_routine(r) for r in self.db.query(sql, tuple(params))]

    def remove(self, routine_id: int) -> bool:
        with self.db.write() as conn:
            return conn.execute("DELETE FROM routines WHERE id = ?", (routine_id,)).rowcount > 0

    def set_enabled(self, routine_id: int, enabled: bool) -> bool:
        with self.db.write() as conn:
            cur = conn.execute("UPDATE routines SET enabled = ?, updated_at = ? WHERE id = ?",
                               (int(enabled), time.time(), routine_id))
            return cur.rowcount > 0

    # --- runs ---

    def claim(self, routine_id: int, due_at: float, trigger: str) -> Run | None:
        """Start the run of one slot; None when that slot was claimed before (it runs once)."""
        now = time.time()
        with self.db.write() as conn:
            claimed = conn.execute(
                "INSERT INTO routine_runs (routine_id, due_at, trigger, status, started_at)"
                " VALUES (?, ?, ?, 'running', ?) ON CONFLICT DO NOTHING RETURNING id",
                (routine_id, due_at, trigger, now)).fetchone()
            if claimed is None:
                return None
            return Run(routine_id, due_at, trigger, started_at=now, id=claimed[0])

    def skip(self, routine_id: int, due_at: float, reason: str) -> bool:
        now = time.time()
        with self.db.write() as conn:
            cur = conn.execute(
                "INSERT INTO routine_runs (routine_id, due_at, trigger, status, error, started_at, finished_at)"
                " VALUES (?, ?, 'schedule', 'skipped', ?, ?, ?) ON CONFLICT DO NOTHING",
                (routine_id, due_at, reason, now, now))
            return cur.rowcount > 0

    def run(self, run_id: int) -> Run | None:
        row = self.db.query_one("SELECT * FROM routine_runs WHERE id = ?", (run_id,))
        return _run(row) if row else None

    def runs(self, routine_id: int, limit: int = 50) -> list[Run]:
        rows = self.db.query("SELECT * FROM routine_runs WHERE routine_id = ? ORDER BY due_at DESC, id DESC LIMIT ?",
                             (routine_id, limit))
        return [_run(r) for r in rows]

    def unfinished(self) -> list[Run]:
        """Runs a crash (or `routines run` without a gateway) left `running` or `answered`."""
        rows = self.db.query("SELECT * FROM routine_runs WHERE status IN ('running', 'answered') ORDER BY id")
        return [_run(r) for r in rows]

    def last_dues(self) -> dict[int, float]:
        """Each routine's newest scheduled slot that has a run (manual runs are not slots)."""
        rows = self.db.query(
            "SELECT routine_id, MAX(due_at) FROM routine_runs WHERE trigger != 'manual' GROUP BY routine_id")
        return {r[0]: r[1] for r in rows}

    def fail(self, run_id: int, error: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE routine_runs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?"
                         " AND status = 'running'", (error[:500], time.time(), run_id))


def mark_answered(conn: sqlite3.Connection, run_id: int, answer: str) -> bool:
    """Inside the transaction that stores the run's replies in the room. False if answered before."""
    cur = conn.execute("UPDATE routine_runs SET status = 'answered', answer = ? WHERE id = ? AND status = 'running'",
                       (answer, run_id))
    return cur.rowcount == 1


def mark_delivered(conn: sqlite3.Connection, run_id: int, delivered_to: list[str], error: str = "") -> bool:
    """Inside the transaction that queues the outbox rows. False if it was delivered before."""
    cur = conn.execute(
        "UPDATE routine_runs SET status = 'delivered', delivered_to = ?, error = ?, finished_at = ?"
        " WHERE id = ? AND status = 'answered'", (json.dumps(delivered_to), error[:500], time.time(), run_id))
    return cur.rowcount == 1


class HeartbeatRepo:
    """Findings a bot's heartbeat already acted on: only something new is worth a model call."""

    def __init__(self, db: Database):
        self.db = db

    def new(self, bot: str, findings: list[str]) -> list[str]:
        if not findings:
            return []
        marks = ",".join("?" * len(findings))
        seen = {r[0] for r in self.db.query(
            f"SELECT finding FROM heartbeat_seen WHERE bot = ? AND finding IN ({marks})", (bot, *findings))}
        return [f for f in findings if f not in seen]

    def due_tasks(self, owner: str, today: str) -> list[sqlite3.Row]:
        """The bot's open tasks due today or before (dates are YYYY-MM-DD), with their room's name."""
        return self.db.query(
            "SELECT t.id, t.room_id, t.number, t.title, t.status, t.due, rooms.name AS room FROM tasks t"
            " JOIN rooms ON rooms.id = t.room_id WHERE t.owner = ? AND t.status != 'done' AND t.due IS NOT NULL"
            " AND t.due <= ? ORDER BY t.due, t.id", (owner, today))

    def unanswered_mentions(self, handle: str, since: float, before: float) -> list[sqlite3.Row]:
        """User messages naming @handle, written in [since, before), that the bot's turn never answered."""
        return self.db.query(
            "SELECT m.id, m.room_id, m.content, m.sender, rooms.name AS room FROM messages m"
            " JOIN rooms ON rooms.id = m.room_id WHERE m.role = 'user' AND m.kind = 'chat'"
            " AND m.created_at >= ? AND m.created_at < ? AND m.content LIKE ? ESCAPE '\\' AND NOT EXISTS"
            " (SELECT 1 FROM messages r WHERE r.turn_id = m.turn_id AND r.turn_id != '' AND r.author = ?"
            " AND r.role = 'assistant') ORDER BY m.id", (since, before, f"%@{_like(handle)}%", handle))

    def remember(self, bot: str, findings: list[str]) -> None:
        now = time.time()
        with self.db.write() as conn:
            conn.executemany("INSERT INTO heartbeat_seen (bot, finding, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                             [(bot, f, now) for f in findings])


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_SELECT = "SELECT r.*, COALESCE(rooms.name, '') AS room FROM routines r LEFT JOIN rooms ON rooms.id = r.room_id"


def _routine(r: Any) -> Routine:
    return Routine(id=r["id"], name=r["name"], message=r["message"], schedule=r["schedule"], tz=r["tz"],
                   room_id=r["room_id"], bot=r["bot"], quiet=bool(r["quiet"]), enabled=bool(r["enabled"]),
                   created_by=r["created_by"], created_at=r["created_at"], room=r["room"])


def _run(r: Any) -> Run:
    return Run(id=r["id"], routine_id=r["routine_id"], due_at=r["due_at"], trigger=r["trigger"], status=r["status"],
               answer=r["answer"], delivered_to=json.loads(r["delivered_to"]), error=r["error"],
               started_at=r["started_at"], finished_at=r["finished_at"])
