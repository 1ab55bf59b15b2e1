"""The gateway's clock: runs routines when due and wakes heartbeats, sleeping in between.

It never polls on a short period: each pass works out the next due time (a routine's next slot, a
bot's next heartbeat) and sleeps until then, or at most RESCAN seconds, when it reads the routines
table again (a routine added by `nanofolks routines add` in another process, or by the leader in chat,
is picked up then; its slots since its creation count, so nothing is lost by the wait).

Missed runs. At start, a crash's leftovers resume first: runs left `running` (no answer stored) are
run again, runs left `answered` are delivered. Then, for each routine, the newest slot that came due
while the gateway was down runs once if it is within `routines.missedGrace`; an older one is recorded
as `skipped` with the reason (`routines history ID` shows it). Older missed slots are not run: a
routine is about now, not a backlog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nanofolks.routines.activity import Activity
from nanofolks.routines.delivery import Target
from nanofolks.routines.heartbeat import Heartbeats, enabled
from nanofolks.routines.schedule import next_opening, parse_duration, parse_hours
from nanofolks.routines.service import RoutineService
from nanofolks.services import Services
from nanofolks.store.routines import Routine, Run

log = logging.getLogger("nanofolks.scheduler")

RESCAN = 20.0  # seconds: the longest sleep, then the routines table is read again
LATE = 60.0  # a slot run more than this late is recorded as a missed run, not a scheduled one


class Scheduler:
    def __init__(self, services: Services, targets: Callable[[], dict[str, Target]],
                 activity: Activity | None = None):
        self.services = services
        self.targets = targets  # the platforms running now, asked at each delivery
        self.activity = activity
        self.routines = RoutineService.of(services)
        self.heartbeats = Heartbeats(services, activity)
        self.grace = parse_duration(services.config.routines.missed_grace)
        self.passes = 0  # times the loop woke up (the idle benchmark counts them)
        self._wake = asyncio.Event()
        self._jobs: set[asyncio.Task] = set()
        self._next: dict[int, tuple[tuple, float]] = {}  # routine -> (its schedule, when next due)
        self._version: tuple[int, int] | None = None  # the database's, when the routines were last read
        self._beats: dict[str, float] = {}  # bot -> next heartbeat
        self._beating: set[str] = set()

    def wake(self) -> None:
        """Look again now (a routine was added or changed in this process)."""
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._resume()
            while True:
                self._wake.clear()
                self.passes += 1
                wait = max(0.0, await self._pass(time.time()) - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, RESCAN))
        finally:
            for job in self._jobs:
                job.cancel()
            if self._jobs:
                await asyncio.wait(self._jobs)

    async def _resume(self) -> None:
        """Finish what a crash (or `routines run` with no gateway) left: re-run or deliver."""
        repo = self.routines.repo
        for run in await self.services.db.run(repo.unfinished):
            routine = await self.services.db.run(repo.get, run.routine_id)
            if routine is None:
                continue
            log.info("routine %s (%s): resuming run %s (%s)", routine.id, routine.name, run.id, run.status)
            if run.status == "answered":
                await self.services.db.run(self.routines.deliver, run, routine, run.answer, self.targets())
            else:
                self._start(self.routines.run(routine, run.due_at, run.trigger, self.targets(), run=run),
                            f"routine-{routine.id}")

    async def _pass(self, now: float) -> float:
        """Start whatever is due; return when something is next due."""
        db = self.services.db
        version = await db.run(db.data_version)
        if version != self._version or any(at <= now for _, at in self._next.values()):
            self._version = version  # read before the routines: a write meanwhile is seen next time
            await self._reschedule(now)
        next_due = min([now + RESCAN, *(at for _, at in self._next.values())])
        for handle in enabled(self.services):
            at = self._beats.setdefault(handle, self._next_beat(handle, now))
            if at <= now and handle not in self._beating:
                self._beating.add(handle)
                self._start(self._beat(handle), f"heartbeat-{handle}")
                at = self._beats[handle] = self._next_beat(handle, now)
            next_due = min(next_due, at)
        return next_due

    async def _reschedule(self, now: float) -> None:
        """Read the routines and handle the due ones. A routine whose next slot is later than now costs
        a dictionary look-up: slots are worked out only when one came due or the routine is new or changed."""
        db = self.services.db
        routines = await db.run(self.routines.repo.list, None, True)
        handled = await db.run(self.routines.repo.last_dues)
        previous, self._next = self._next, {}
        for routine in routines:
            assert routine.id is not None
            key = (routine.schedule, routine.tz, routine.created_at)
            cached = previous.get(routine.id)
            at = cached[1] if cached and cached[0] == key else 0.0
            if at <= now:
                try:
                    at = await self._routine(routine, handled.get(routine.id), now)
                except Exception:  # noqa: BLE001 - one broken routine must not stop the others
                    log.exception("routine %s (%s): could not be scheduled", routine.id, routine.name)
                    at = now + RESCAN
            self._next[routine.id] = (key, at)

    async def _routine(self, routine: Routine, handled: float | None, now: float) -> float:
        """Run or skip the routine's newest slot that has not been handled; its next slot after now."""
        assert routine.id is not None
        schedule = self.routines.schedule_of(routine)
        slot = schedule.newest_at_or_before(now)
        if slot is not None and slot > max(handled or 0.0, routine.created_at):
            late = now - slot
            if late > self.grace:
                reason = (f"missed while the gateway was down; {late / 60:.0f} min late, beyond the "
                          f"{self.services.config.routines.missed_grace} grace (routines.missedGrace)")
                if await self.services.db.run(self.routines.repo.skip, routine.id, slot, reason):
                    log.warning("routine %s (%s): %s", routine.id, routine.name, reason)
            else:
                trigger = "schedule" if late <= LATE else "missed"
                run = await self.services.db.run(self.routines.repo.claim, routine.id, slot, trigger)
                if run is not None:
                    self._start(self._run(routine, slot, trigger, run), f"routine-{routine.id}")
        return schedule.next_after(now)

    async def _run(self, routine: Routine, slot: float, trigger: str, run: Run) -> None:
        if routine.quiet and self.activity is not None:
            await self.activity.quiet(routine.room_id)
        log.info("routine %s (%s): running (%s)", routine.id, routine.name, trigger)
        outcome = await self.routines.run(routine, slot, trigger, self.targets(), run=run)
        if outcome is not None:
            note = f" ({outcome.note})" if outcome.note else ""
            log.info("routine %s (%s): run %s delivered to %s%s", routine.id, routine.name, outcome.run.id,
                     ", ".join(outcome.delivered_to) or "no chat", note)

    def _next_beat(self, handle: str, now: float) -> float:
        beat = self.services.config.agents.bots[handle].heartbeat
        at = now + parse_duration(beat.every) + random.uniform(0, parse_duration(beat.jitter))
        return next_opening(at, parse_hours(beat.active_hours), self.services.config.routines.timezone)

    async def _beat(self, handle: str) -> None:
        try:
            await self.heartbeats.beat(handle, self.targets())
        finally:
            self._beating.discard(handle)

    def _start(self, job: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(self._guard(job, name), name=name)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    @staticmethod
    async def _guard(job: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed job is logged; the scheduler goes on
            log.exception("%s failed", name)
