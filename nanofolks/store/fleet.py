"""The SQL of gateway workers sharing one PostgreSQL database (gateway/fleet.py runs it).

Three mechanisms, all PostgreSQL's own:
- a worker is alive while it holds its session advisory lock (namespace WORKER_LOCKS, its `lock_key`):
  the lock dies with the worker's connection, so `kill -9` (or a machine that vanished, once TCP
  keepalive gives up) frees it, and `reap` then releases what the dead worker had claimed;
- named locks (a bot token's poller, the scheduler) are session advisory locks too (NAMED_LOCKS);
- the inbox is a work queue: `claim` takes the oldest claimable row with `FOR UPDATE SKIP LOCKED`, and
  marks it with a lease (`claimed_by`, `lease_until`) renewed by the holder's heartbeat.

A chat's messages are claimed strictly in order: a row is claimable only when no older row of its chat
is still pending, so at most one message per chat is in flight across the fleet.

Every call runs in autocommit on a worker's own connection (advisory locks are per session)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from nanofolks.store.db import Database

WORKER_LOCKS = 1_851_876_001  # advisory lock namespaces (the first int4 of pg_advisory_lock(int4, int4))
NAMED_LOCKS = 1_851_876_002
INBOX_CHANNEL = "nanofolks_inbox"  # NOTIFY: a message became claimable (payload unused)
OUTBOX_CHANNEL = "nanofolks_outbox"  # NOTIFY: replies were queued; payload "platform:account"

# Live = its advisory lock is held in this database (pg_locks shows the int4 pair as classid/objid).
_HELD = """EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid::bigint = {ns} AND l.objid::bigint = {key})"""
_LIVE = _HELD.format(ns=WORKER_LOCKS, key="w.lock_key")
# Leases and heartbeats are timed by the server's clock, never a worker's: machines' clocks differ.
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"


@dataclass
class WorkerRow:
    id: int
    host: str
    pid: int
    started_at: float
    seen_at: float
    holds: list[dict[str, str]] = field(default_factory=list)  # [{"lock": name, **what it is}]


def lock_key(scope: str, name: str) -> int:
    """A positive int4 for a lock name, scoped to the schema so two homes in one database never collide."""
    return int.from_bytes(hashlib.sha256(f"{scope}/{name}".encode()).digest()[:4], "big") & 0x7FFF_FFFF


class FleetRepo:
    def __init__(self, conn: AsyncConnection, scope: str):
        self.conn = conn
        self.scope = scope  # the schema: part of every lock key

    async def _one(self, sql: str, params: tuple = ()) -> Any:
        cur = await self.conn.execute(sql, params)
        row = await cur.fetchone()
        return None if row is None else row[0]

    # --- the registry ---------------------------------------------------------------------------

    async def join(self, host: str, pid: int) -> int:
        """Register this worker; its lock is taken before its row exists, so nobody reaps it as dead."""
        key = lock_key(self.scope, f"worker/{host}/{pid}/{time.time()}")
        while not await self._one("SELECT pg_try_advisory_lock(%s, %s)", (WORKER_LOCKS, key)):
            key = (key + 1) & 0x7FFF_FFFF  # another live worker has it (a near-impossible collision)
        return await self._one(
            f"INSERT INTO workers (lock_key, host, pid, started_at, seen_at, holds) VALUES (%s, %s, %s, {_NOW},"
            f" {_NOW}, '[]') RETURNING id", (key, host, pid))

    async def beat(self, worker_id: int, holds: list[dict[str, str]], lease_ttl: float) -> bool:
        """Say this worker is alive and renew the leases of its claimed rows. False when its row is gone
        (it was taken for dead: its lock was lost with its connection)."""
        cur = await self.conn.execute(f"UPDATE workers SET seen_at = {_NOW}, holds = %s WHERE id = %s",
                                      (json.dumps(holds), worker_id))
        if not cur.rowcount:
            return False
        await self.conn.execute(f"UPDATE inbox SET lease_until = {_NOW} + %s WHERE claimed_by = %s"
                                " AND status = 'pending'", (lease_ttl, worker_id))
        return True

    async def reap(self) -> int:
        """Forget workers whose lock is free (dead): their claimed messages become claimable at once and
        their room leases are dropped. Returns how many messages were released."""
        released = 0
        async with self.conn.transaction():
            cur = await self.conn.execute(f"SELECT id, host, pid FROM workers w WHERE NOT {_LIVE} FOR UPDATE SKIP LOCKED")
            for worker_id, host, pid in await cur.fetchall():
                cur = await self.conn.execute(
                    "UPDATE inbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = %s AND status = 'pending'",
                    (worker_id,))
                released += cur.rowcount
                # RoomLeases holders are "host:pid:nonce" (store/leases.py)
                await self.conn.execute("DELETE FROM room_leases WHERE holder LIKE %s", (f"{host}:{pid}:%",))
                await self.conn.execute("DELETE FROM workers WHERE id = %s", (worker_id,))
        return released

    async def end_hung(self, silent_for: float) -> int:
        """End the sessions of workers whose heartbeat stopped `silent_for` seconds ago although their lock
        lives (a process stopped or stuck, its connection open): a session advisory lock cannot be taken
        from its holder, so this is how their bot tokens move. The next `reap` frees the rest; the worker,
        if it ever runs again, finds its connection gone and stops. Returns how many were ended."""
        cur = await self.conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM workers w JOIN pg_locks l ON l.locktype = 'advisory'"
            " AND l.granted AND l.objsubid = 2 AND l.classid::bigint = %s AND l.objid::bigint = w.lock_key"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            f" WHERE w.seen_at < {_NOW} - %s", (WORKER_LOCKS, silent_for))
        return sum(1 for (ended,) in await cur.fetchall() if ended)

    async def leave(self, worker_id: int) -> int:
        """A clean stop: hand this worker's claimed messages back and remove its row."""
        async with self.conn.transaction():
            released = await self.release_claims(worker_id)
            await self.conn.execute("DELETE FROM workers WHERE id = %s", (worker_id,))
        return released

    # --- the inbox as a work queue ----------------------------------------------------------------

    async def claim(self, worker_id: int, lease_ttl: float) -> tuple[int, str, str] | None:
        """The oldest claimable pending message (no lease, or an expired one, and no older pending
        message of its chat), now leased to this worker: (id, platform, account); None when there is none."""
        cur = await self.conn.execute(
            f"""UPDATE inbox SET claimed_by = %s, lease_until = {_NOW} + %s WHERE id = (
                 SELECT i.id FROM inbox i
                 WHERE i.status = 'pending' AND (i.lease_until IS NULL OR i.lease_until < {_NOW})
                   AND NOT EXISTS (SELECT 1 FROM inbox e WHERE e.status = 'pending' AND e.platform = i.platform
                                   AND e.account = i.account AND e.chat_id = i.chat_id AND e.id < i.id)
                 ORDER BY i.id LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING id, platform, account""", (worker_id, lease_ttl))
        row = await cur.fetchone()
        return None if row is None else (row[0], row[1], row[2])

    async def park(self, inbox_id: int, worker_id: int, retry_in: float) -> None:
        """A message this worker failed to answer: anyone may try it again in `retry_in` seconds."""
        await self.conn.execute(
            f"UPDATE inbox SET claimed_by = NULL, lease_until = {_NOW} + %s WHERE id = %s AND claimed_by = %s"
            " AND status = 'pending'", (retry_in, inbox_id, worker_id))

    async def release_claims(self, worker_id: int) -> int:
        cur = await self.conn.execute(
            "UPDATE inbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = %s AND status = 'pending'",
            (worker_id,))
        return cur.rowcount

    # --- named locks and notifications -------------------------------------------------------------

    async def try_lock(self, name: str) -> bool:
        return bool(await self._one("SELECT pg_try_advisory_lock(%s, %s)", (NAMED_LOCKS, lock_key(self.scope, name))))

    async def unlock(self, name: str) -> None:
        await self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMED_LOCKS, lock_key(self.scope, name)))

    async def notify(self, channel: str, payload: str = "") -> None:
        await self.conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    async def workers(self) -> list[WorkerRow]:
        return await _workers(self.conn)


async def prepare_session(conn: AsyncConnection) -> str:
    """Make the server notice a vanished client within about 25 s (its locks die then), and return the
    schema, which scopes every lock key. This connection's commits (claims, leases, the registry) do not
    wait for the disk: one lost to a server crash is a lease that never was, taken again (about 4 ms saved
    per claim where a commit's fsync costs that)."""
    for setting in ("tcp_keepalives_idle = 10", "tcp_keepalives_interval = 5", "tcp_keepalives_count = 3",
                    "synchronous_commit = off"):
        await conn.execute(f"SET {setting}")
    cur = await conn.execute("SELECT current_schema()")
    row = await cur.fetchone()
    return str(row[0]) if row else "public"


async def listen(conn: AsyncConnection, *channels: str) -> None:
    for channel in channels:
        await conn.execute(f"LISTEN {channel}")


async def _workers(conn: AsyncConnection) -> list[WorkerRow]:
    cur = await conn.execute(f"SELECT id, host, pid, started_at, seen_at, holds FROM workers w WHERE {_LIVE} ORDER BY id")
    return [_worker(r) for r in await cur.fetchall()]


def live_workers(db: Database) -> list[WorkerRow]:
    """The live workers, for `nanofolks status` (through the store's pool: the CLI is not async)."""
    return [_worker(r) for r in db.query(
        f"SELECT id, host, pid, started_at, seen_at, holds FROM workers w WHERE {_LIVE} ORDER BY id")]


def is_postgres(db: object) -> bool:
    dialect = getattr(db, "dialect", None)
    return dialect is not None and dialect.name == "postgresql"


def _worker(r: Any) -> WorkerRow:  # noqa: ANN401 - a tuple or the store's Row
    return WorkerRow(id=r[0], host=r[1], pid=r[2], started_at=r[3], seen_at=r[4], holds=json.loads(r[5] or "[]"))
