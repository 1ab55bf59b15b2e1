"""Room tasks: create, change status, assign, hand off; every change is an event with who, when and why."""

from __future__ import annotations

import datetime as dt

from nanofolks.rooms.rooms import Rooms
from nanofolks.store.rooms import Room
from nanofolks.store.tasks import PRIORITIES, STATUSES, Task, TaskEvent, TaskRepo


class TaskError(Exception):
    """A task problem worth one clear line to the user."""


class Tasks:
    def __init__(self, repo: TaskRepo, rooms: Rooms):
        self.repo = repo
        self.rooms = rooms

    def add(self, room: Room, title: str, owner: str, priority: str = "medium", due: str | None = None,
            actor: str = "user") -> Task:
        title = title.strip()
        if not title:
            raise TaskError("a task needs a title")
        if priority not in PRIORITIES:
            raise TaskError(f"invalid priority {priority!r}: choose one of {', '.join(PRIORITIES)}")
        owner = self._owner(room, owner)
        return self.repo.add(room.id, title[:500], owner, priority, _due(due), actor)

    def get(self, room: Room, number: int) -> Task:
        task = self.repo.get(room.id, number)
        if task is None:
            raise TaskError(f"no task {number} in room {room.name!r}")
        return task

    def list(self, room: Room, owner: str | None = None) -> list[Task]:
        return self.repo.list(room.id, owner)

    def set_status(self, room: Room, number: int, status: str, actor: str = "user", reason: str = "") -> Task:
        if status not in STATUSES:
            raise TaskError(f"invalid status {status!r}: choose one of {', '.join(STATUSES)}")
        return self._change(room, number, "status", status, actor, "status", reason)

    def assign(self, room: Room, number: int, owner: str, actor: str = "user", reason: str = "") -> Task:
        return self._change(room, number, "owner", self._owner(room, owner), actor, "assigned", reason)

    def handoff(self, room: Room, number: int, owner: str, reason: str, actor: str = "user") -> Task:
        if not reason.strip():
            raise TaskError("a handoff needs a reason (--reason)")
        return self._change(room, number, "owner", self._owner(room, owner), actor, "handoff", reason)

    def history(self, room: Room, number: int) -> list[TaskEvent]:
        return self.repo.history(self.get(room, number).id)

    def _change(self, room: Room, number: int, field: str, value: str, actor: str, kind: str, reason: str) -> Task:
        for _ in range(20):  # compare-and-set: re-read and retry if somebody changed the task first
            task = self.get(room, number)
            updated = self.repo.change(task, field, value, actor, kind, reason)
            if updated is not None:
                return updated
        raise TaskError(f"task {number} is changing too fast; try again")

    def _owner(self, room: Room, owner: str) -> str:
        """A task's owner is a bot of the crew; giving it a task brings it into the room."""
        bot = self.rooms.crew.resolve(owner.lstrip("@"))
        if bot is None:
            raise TaskError(f"no bot named {owner!r} in this crew (bots: {', '.join(self.rooms.crew.handles)})")
        if bot.handle not in room.members:
            self.rooms.invite(room.name, bot.handle)
            room.members.append(bot.handle)
        return bot.handle


def _due(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise TaskError(f"invalid due date {value!r}: use YYYY-MM-DD") from exc
