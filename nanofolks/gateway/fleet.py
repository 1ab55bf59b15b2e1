"""This gateway as one worker of several sharing a PostgreSQL database (docs/scaling.md).

A worker keeps two connections of its own beside the store's pool:
- the lock connection holds its session advisory locks (its own life, the bot tokens it polls, the
  scheduler) and runs the heartbeat and the inbox claims (store/fleet.py);
- the listen connection waits for NOTIFY: a message to claim, replies to send on a channel it polls.

Every BEAT seconds a worker renews its claimed messages' leases and looks for workers whose lock died
with them (kill -9, a lost machine): their messages are claimable again at once. A worker that loses its
own lock connection has lost its locks with it, so it stops (its supervisor starts it again): polling
on would make two pollers of one bot token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from nanofolks.store.db import StoreError
from nanofolks.store.fleet import INBOX_CHANNEL, OUTBOX_CHANNEL, FleetRepo, WorkerRow, listen, prepare_session

if TYPE_CHECKING:
    from psycopg import AsyncConnection

log = logging.getLogger("nanofolks.fleet")

BEAT = 2.0  # seconds between heartbeats: leases renewed, dead workers looked for
LEASE_TTL = 15.0  # a claimed message's lease without renewal: a hung (not dead) worker's messages move after it
# Seconds without a heartbeat before a worker whose session lives is ended by the others. Generous: a
# starting worker's event loop was seen to stall for 15-30 s on a loaded 2-core machine (imports).
HUNG_AFTER = 120.0
TAKEOVER_CHECK = 1.0  # seconds between tries for a lock another worker holds
RETRY_FAILED = 30.0  # seconds before a message whose answering failed may be claimed again


class Fleet:
    def __init__(self, url: str):
        self.url = url
        self.worker_id = 0
        self.claimable = asyncio.Event()  # set on a notification: look at the inbox
        self.senders: dict[str, Callable[[], None]] = {}  # "platform:account" -> wake the local send worker
        self.holds: dict[str, dict[str, str]] = {}  # lock name -> what it is, shown by `nanofolks status`
        self.workers: list[WorkerRow] = []  # the live workers at the last heartbeat, this one included
        self._conn: AsyncConnection | None = None
        self._listen: AsyncConnection | None = None
        self._repo: FleetRepo | None = None
        self._lock = asyncio.Lock()  # one statement or transaction at a time on the lock connection
        self._notes: set[asyncio.Task] = set()  # notifications sent in the background, kept from the GC

    async def join(self) -> None:
        """Connect, register, and free what workers that died meanwhile had claimed."""
        from psycopg import AsyncConnection, OperationalError

        name = f"nanofolks worker {socket.gethostname()}:{os.getpid()}"  # so pg_stat_activity tells them apart
        try:
            self._conn = await AsyncConnection.connect(self.url, autocommit=True, application_name=name)
            self._listen = await AsyncConnection.connect(self.url, autocommit=True, application_name=name)
        except OperationalError as exc:
            raise StoreError(f"cannot connect to the database: {(str(exc).strip() or type(exc).__name__).splitlines()[0]}") from exc
        self._repo = FleetRepo(self._conn, await prepare_session(self._conn))
        await listen(self._listen, INBOX_CHANNEL, OUTBOX_CHANNEL)
        self.worker_id = await self._repo.join(socket.gethostname(), os.getpid())
        await self._reap()
        self.workers = await self._repo.workers()
        self.claimable.set()  # whatever is pending already
        log.info("fleet: joined as worker %d (%d live)", self.worker_id, len(self.workers))

    async def run(self) -> None:
        """Heartbeats and notifications until cancelled; StoreError when this worker lost its locks."""
        listening = asyncio.create_task(self._notifications(), name="fleet-listen")
        try:
            while True:
                await asyncio.sleep(BEAT)
                if listening.done():
                    listening.result()  # the listen connection failed: raise why
                await self._beat()
        except Exception as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"lost the database connection ({type(exc).__name__}: {exc}); this worker stops, "
                             "the others take over its work") from exc
        finally:
            listening.cancel()

    async def _beat(self) -> None:
        async with self._lock:
            alive = await self.repo.beat(self.worker_id, list(self.holds.values()), LEASE_TTL)
        if not alive:
            raise StoreError("this worker was taken for dead by the fleet (its database session ended); it stops")
        await self._reap()
        async with self._lock:
            self.workers = await self.repo.workers()

    async def _reap(self) -> None:
        async with self._lock:
            if ended := await self.repo.end_hung(HUNG_AFTER):
                log.warning("fleet: ended the sessions of %d workers silent for %.0fs; their work moves", ended,
                            HUNG_AFTER)
            released = await self.repo.reap()
        if released:
            log.warning("fleet: %d messages of stopped workers are claimable again", released)
            await self.notify_inbox()

    async def _notifications(self) -> None:
        assert self._listen is not None and self._conn is not None
        own = self._conn.info.backend_pid  # this worker's own notices: it woke itself when it sent them
        async for note in self._listen.notifies():
            if note.channel == INBOX_CHANNEL:
                if note.pid != own:
                    self.claimable.set()
            elif (wake := self.senders.get(note.payload)) is not None:
                wake()

    @property
    def repo(self) -> FleetRepo:
        assert self._repo is not None, "join() first"
        return self._repo

    # --- the inbox ------------------------------------------------------------------------------

    async def claim(self) -> tuple[int, str, str] | None:
        """(inbox id, platform, account) of a message now leased to this worker, or None."""
        async with self._lock:
            return await self.repo.claim(self.worker_id, LEASE_TTL)

    async def park(self, inbox_id: int) -> None:
        async with self._lock:
            await self.repo.park(inbox_id, self.worker_id, RETRY_FAILED)

    async def hand_back(self) -> None:
        """Stopping: the messages this worker had claimed go to the others now."""
        async with self._lock:
            released = await self.repo.release_claims(self.worker_id)
        if released:
            log.info("fleet: %d unanswered messages handed to the other workers", released)
            await self.notify_inbox()

    async def notify_inbox(self) -> None:
        """Messages became claimable (a new one, or a chat's previous one answered): every worker looks."""
        self.claimable.set()
        async with self._lock:
            await self.repo.notify(INBOX_CHANNEL)

    async def notify_outbox(self, platform: str, account: str) -> None:
        """Replies were queued: the worker polling that bot sends them (this one, without a round trip)."""
        key = f"{platform}:{account}"
        if (wake := self.senders.get(key)) is not None:
            wake()
            return
        async with self._lock:
            await self.repo.notify(OUTBOX_CHANNEL, key)

    def wake_sender(self, platform: str, account: str) -> None:
        """notify_outbox from code that cannot wait (a "still working" notice queued during a turn)."""
        note = asyncio.get_running_loop().create_task(self.notify_outbox(platform, account))
        self._notes.add(note)
        note.add_done_callback(self._notes.discard)

    # --- named locks ------------------------------------------------------------------------------

    async def hold(self, name: str, **what: str) -> None:
        """Wait until this worker holds the lock `name` (one holder in the whole fleet)."""
        waiting = False
        while True:
            async with self._lock:
                if await self.repo.try_lock(name):
                    break
            if not waiting:
                log.info("fleet: %s is held by another worker; standing by to take it over", name)
                waiting = True
            await asyncio.sleep(TAKEOVER_CHECK)
        self.holds[name] = {"lock": name, **what}
        if waiting:
            log.info("fleet: took over %s", name)

    async def release(self, name: str) -> None:
        if self.holds.pop(name, None) is not None:
            async with self._lock:
                await self.repo.unlock(name)

    def held_by_fleet(self) -> dict[str, dict[str, str]]:
        """Every lock held by a live worker, by name (at the last heartbeat, with this worker's own now)."""
        held = {h["lock"]: h for w in self.workers if w.id != self.worker_id for h in w.holds}
        return {**held, **self.holds}

    async def leave(self) -> None:
        """A clean stop: hand back claims, remove this worker's row, close (the locks go with the session)."""
        with contextlib.suppress(Exception):
            async with self._lock:
                released = await self.repo.leave(self.worker_id)
                if released:
                    await self.repo.notify(INBOX_CHANNEL)
        for conn in (self._listen, self._conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._conn = self._listen = None
