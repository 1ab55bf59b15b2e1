"""Room tasks and their event history (every change: who, when, why)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nanofolks.store.db import Database
from nanofolks.store.worklog import WorkEntry
from nanofolks.store.worklog import insert as log_work

STATUSES = ("todo", "in_progress", "blocked", "done")
PRIORITIES = ("low", "medium", "high", "urgent")


@dataclass
class Task:
    id: int
    room_id: int
    number: int  # short and stable within its room: what users type
    title: str
    owner: str
    status: str
    priority: str
    due: str | None
    version: int
    created_at: float
    updated_at: float


@dataclass
class TaskEvent:
    at: float
    actor: str
    kind: str  # created | status | assigned | handoff
    from_value: str | None
    to_value: str | None
    reason: str


class TaskRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, room_id: int, title: str, owner: str, priority: str, due: str | None, actor: str) -> Task:
        now = time.time()
        with self.db.write() as conn:
            number = conn.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM tasks WHERE room_id = ?", (room_id,)
            ).fetchone()[0]
            task_id = conn.execute(
                "INSERT INTO tasks (room_id, number, title, owner, priority, due, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (room_id, number, title, owner, priority, due, now, now),
            ).fetchone()[0]
            self._event(conn, task_id, actor, "created", None, owner, title)
        task = self.get(room_id, number)
        assert task is not None
        return task

    def get(self, room_id: int, number: int) -> Task | None:
        row = self.db.query_one("SELECT * FROM tasks WHERE room_id = ? AND number = ?", (room_id, number))
        return self._task(row) if row else None

    def list(self, room_id: int, owner: str | None = None) -> list[Task]:
        if owner:
            rows = self.db.query(
                "SELECT * FROM tasks WHERE room_id = ? AND owner = ? ORDER BY number", (room_id, owner)
            )
        else:
            rows = self.db.query("SELECT * FROM tasks WHERE room_id = ? ORDER BY number", (room_id,))
        return [self._task(r) for r in rows]

    def change(self, task: Task, field: str, value: str, actor: str, kind: str, reason: str = "") -> Task | None:
        """Set `status` or `owner` if the task is still at the version the caller read (compare-and-set).
        Returns the updated task, or None when somebody changed it first."""
        if field not in ("status", "owner"):
            raise ValueError(field)
        old = getattr(task, field)
        with self.db.write() as conn:
            cur = conn.execute(
                f"UPDATE tasks SET {field} = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
                (value, time.time(), task.id, task.version),
            )
            if cur.rowcount != 1:
                return None
            self._event(conn, task.id, actor, kind, old, value, reason)
            if field == "status" and value == "done" and old != "done":  # a completed task is a work log entry
                log_work(conn, WorkEntry(task.room_id, actor, "task", f"completed task #{task.number}: {task.title}",
                                         reason, artifacts=[f"task:#{task.number}"]))
        return self.get(task.room_id, task.number)

    def history(self, task_id: int) -> list[TaskEvent]:
        rows = self.db.query(
            "SELECT at, actor, kind, from_value, to_value, reason FROM task_events WHERE task_id = ? ORDER BY id",
            (task_id,),
        )
        return [TaskEvent(*tuple(r)) for r in rows]

    @staticmethod
    def _event(conn: Any, task_id: int, actor: str, kind: str, old: str | None, new: str | None, reason: str) -> None:
        conn.execute(
            "INSERT INTO task_events (task_id, at, actor, kind, from_value, to_value, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (task_id, time.time(), actor, kind, old, new, reason),
        )

    @staticmethod
    def _task(row: Any) -> Task:
        return Task(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - a Row iterates over values
