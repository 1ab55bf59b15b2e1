"""One turn at a time per room across processes: a lease row per room in the database.

The holder renews it while its turn runs; a lease left by a process that died is taken over once it
expired, or at once when its holder was a process of this machine that no longer exists."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

from nanofolks.store.db import Database

TTL = 30.0  # seconds a lease lasts without renewal
POLL = 0.1  # seconds between tries while another process holds the room
_HOST = socket.gethostname()


class RoomLeases:
    def __init__(self, db: Database):
        self.db = db

    def take(self, room_id: int, holder: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self.db.write() as conn:
            row = conn.execute("SELECT holder, expires_at FROM room_leases WHERE room_id = ?", (room_id,)).fetchone()
            if row is not None and row["holder"] != holder and row["expires_at"] > now and _alive(row["holder"]):
                return False
            conn.execute("INSERT INTO room_leases (room_id, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT"
                         " (room_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                         (room_id, holder, now + TTL))
        return True

    def release(self, room_id: int, holder: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM room_leases WHERE room_id = ? AND holder = ?", (room_id, holder))

    @contextlib.asynccontextmanager
    async def hold(self, room_id: int) -> AsyncIterator[None]:
        """Wait for the room, keep it (renewed) while the block runs, then let it go."""
        holder = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        while not await self.db.quick(self.take, room_id, holder):
            await asyncio.sleep(POLL)
        renew = asyncio.create_task(self._renew(room_id, holder))
        try:
            yield
        finally:
            renew.cancel()
            await asyncio.shield(self.db.run(self.release, room_id, holder))

    async def _renew(self, room_id: int, holder: str) -> None:
        while True:
            await asyncio.sleep(TTL / 3)
            await self.db.quick(self.take, room_id, holder)


def _alive(holder: str) -> bool:
    """False only when the holder was a process of this machine that is gone (killed, crashed)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
