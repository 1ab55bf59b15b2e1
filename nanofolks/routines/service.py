"""Routines: a message the crew receives on a schedule, answered through the same pipeline as a user's
message in the routine's room, and delivered to every chat mapped to that room through the outbox.

One run = one due slot (see store/routines.py): claimed once, answered once (the answer is stored in
the same transaction as the room's replies), delivered once (the outbox rows are queued in the same
transaction that marks the run delivered). A crash between any two steps resumes at the next one."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nanofolks.config.schema import Config
from nanofolks.crew.crew import Crew
from nanofolks.orchestrator.turn import FinalAnswer
from nanofolks.rooms.rooms import Rooms
from nanofolks.routines.delivery import Target, outbox_rows
from nanofolks.routines.schedule import Schedule, ScheduleError, zone
from nanofolks.store.db import Database
from nanofolks.store.outbox import insert_rows
from nanofolks.store.rooms import Room
from nanofolks.store.routines import Routine, RoutineRepo, Run, mark_answered, mark_delivered
from nanofolks.store.worklog import WorkEntry
from nanofolks.store.worklog import insert as log_work

log = logging.getLogger("nanofolks.routines")

MAX_NAME = 80
MAX_MESSAGE = 4_000


class RoutineError(Exception):
    """A routine problem worth one clear line to the user."""


class _Answered(Exception):
    """The run was answered meanwhile: this turn's writes are rolled back."""


@dataclass
class Outcome:
    run: Run
    answer: str
    delivered_to: list[str]
    note: str = ""


Commit = Callable[[FinalAnswer], Callable[[sqlite3.Connection], None]]


class Answers(Protocol):
    """What a routine run needs of the pipeline (orchestrator/pipeline.py), which it never imports: the
    pipeline's tools include the routine tool, which uses this service."""

    async def handle(self, room: Room, text: str, *, sender: str, platform: str, turn_id: str,
                     commit: Commit) -> Any: ...


class Parts(Protocol):
    """What `RoutineService.of` reads from the process's services (nanofolks/services.py)."""

    config: Config
    db: Database

    @property
    def rooms(self) -> Rooms: ...

    @property
    def crew(self) -> Crew: ...

    @property
    def pipeline(self) -> Answers: ...


class RoutineService:
    def __init__(self, config: Config, db: Database, rooms: Rooms, crew: Crew,
                 pipeline: Callable[[], Answers] | None = None):
        self.config = config
        self.db = db
        self.rooms = rooms
        self.crew = crew
        self.pipeline = pipeline  # built only when a routine runs (managing routines needs no models)
        self.repo = RoutineRepo(db)

    @classmethod
    def of(cls, services: Parts) -> RoutineService:
        return cls(services.config, services.db, services.rooms, services.crew, lambda: services.pipeline)

    # --- managing ---

    def add(self, name: str, message: str, schedule: str, room: str = "general", bot: str = "", tz: str = "",
            quiet: bool = False, created_by: str = "cli") -> Routine:
        name, message = " ".join(name.split()), message.strip()
        if not name or len(name) > MAX_NAME:
            raise RoutineError(f"a routine needs a name of 1-{MAX_NAME} characters")
        if not message or len(message) > MAX_MESSAGE:
            raise RoutineError(f"a routine needs a message of 1-{MAX_MESSAGE} characters")
        handle = ""
        if bot:
            found = self.crew.resolve(bot.lstrip("@"))
            if found is None:
                raise RoutineError(f"no bot named {bot!r} in this crew (bots: {', '.join(self.crew.handles)})")
            handle = found.handle
        try:
            zone(tz)
            Schedule(schedule, tz or self.config.routines.timezone, time.time())
        except ScheduleError as exc:
            raise RoutineError(str(exc)) from None
        target = self.rooms.get(room.lstrip("#"))
        if handle and handle not in target.members:  # giving a bot a routine brings it into the room
            target = self.rooms.invite(target.name, handle)
        made = self.repo.add(Routine(name, message, schedule, target.id, tz=tz, bot=handle, quiet=quiet,
                                     created_by=created_by))
        assert made.id is not None
        return self.get(made.id)

    def get(self, routine_id: int) -> Routine:
        routine = self.repo.get(routine_id)
        if routine is None:
            raise RoutineError(f"no routine with id {routine_id} (see `nanofolks routines list`)")
        return routine

    def remove(self, routine_id: int) -> None:
        if not self.repo.remove(routine_id):
            raise RoutineError(f"no routine with id {routine_id} (see `nanofolks routines list`)")

    def set_enabled(self, routine_id: int, enabled: bool) -> Routine:
        if not self.repo.set_enabled(routine_id, enabled):
            raise RoutineError(f"no routine with id {routine_id} (see `nanofolks routines list`)")
        return self.get(routine_id)

    def schedule_of(self, routine: Routine) -> Schedule:
        return Schedule(routine.schedule, self.tz(routine), routine.created_at)

    def tz(self, routine: Routine) -> str:
        return routine.tz or self.config.routines.timezone

    def next_due(self, routine: Routine, now: float | None = None) -> float | None:
        return self.schedule_of(routine).next_after(now or time.time()) if routine.enabled else None

    def local_time(self, routine: Routine, at: float | None) -> str | None:
        """A time as the routine's zone shows it: '2026-11-30 09:00 CET'."""
        return dt.datetime.fromtimestamp(at, zone(self.tz(routine))).strftime("%Y-%m-%d %H:%M %Z") if at else None

    # --- running ---

    async def answer(self, run: Run, routine: Routine) -> str | None:
        """Run the routine's message through the pipeline in its room; the answer is stored with the
        run in one transaction. None when the turn failed (the run is marked failed, the log says why)."""
        assert run.id is not None
        room = self.rooms.repo.get_by_id(routine.room_id)
        if room is None:
            await self.db.run(self.repo.fail, run.id, "the routine's room no longer exists")
            return None
        text = f"@{routine.bot} {routine.message}" if routine.bot else routine.message
        answer = ""

        def commit(final: FinalAnswer) -> Callable[[sqlite3.Connection], None]:
            nonlocal answer
            answer = final.markdown().strip()

            def store(conn: sqlite3.Connection) -> None:
                if not mark_answered(conn, run.id, answer):
                    raise _Answered(run.id)

            return store

        assert self.pipeline is not None, "a RoutineService built without a pipeline cannot run routines"
        try:
            await self.pipeline().handle(room, text, sender=f"routine:{routine.name}",
                                         person=f"routine:{routine.name}", platform="routine",
                                         turn_id=f"routine-run-{run.id}", commit=commit)
        except _Answered:
            refreshed = await self.db.run(self.repo.run, run.id)
            return refreshed.answer if refreshed else None
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded; the schedule goes on
            log.exception("routine %s (%s): run %s failed", routine.id, routine.name, run.id)
            await self.db.run(self.repo.fail, run.id, f"{type(exc).__name__}: {exc}")
            return None
        return answer

    def deliver(self, run: Run, routine: Routine, answer: str, targets: dict[str, Target]) -> list[str] | None:
        """Queue the answer for every chat mapped to the room and mark the run delivered, in one
        transaction. None when no mapped chat can be reached here: the run stays `answered` for a
        gateway that can (it delivers such runs at start)."""
        assert run.id is not None
        delivery = outbox_rows(self.rooms.repo, routine.room_id, f"routine-run:{run.id}", answer or "(no answer)",
                               targets)
        if delivery.missing and not delivery.chats:
            return None
        entry = WorkEntry(routine.room_id, routine.bot or "crew", "routine", f"routine {routine.name!r} ran",
                          answer, artifacts=[f"run:{run.id}", *(f"chat:{c}" for c in delivery.chats)],
                          turn_id=f"routine-run-{run.id}")
        with self.db.write() as conn:
            if mark_delivered(conn, run.id, delivery.chats, delivery.note):
                insert_rows(conn, delivery.rows)
                log_work(conn, entry)
        return delivery.chats

    async def run(self, routine: Routine, due_at: float, trigger: str, targets: dict[str, Target],
                  run: Run | None = None) -> Outcome | None:
        """Claim the slot (unless resuming `run`), answer, deliver. None when the slot ran before."""
        run = run or await self.db.run(self.repo.claim, routine.id, due_at, trigger)
        if run is None:
            return None
        answer = await self.answer(run, routine)
        if answer is None:
            return None
        chats = await self.db.run(self.deliver, run, routine, answer, targets)
        return Outcome(run, answer, chats or [], "" if chats is not None else "no mapped chat reachable yet")
