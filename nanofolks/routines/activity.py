"""Which rooms are in conversation right now. Background work (heartbeats, quiet routines, memory
consolidation) waits while the user is talking in a room, but never longer than a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Activity:
    def __init__(self, live_for: float, max_wait: float, clock: Callable[[], float] = time.monotonic):
        self.live_for = live_for  # a room is live this long after its last message
        self.max_wait = max_wait  # the most any background job waits for a room to go quiet
        self.clock = clock
        self._last: dict[int, float] = {}

    def touch(self, room_id: int) -> None:
        """Somebody wrote (or is typing) in the room."""
        self._last[room_id] = self.clock()

    def live(self, room_id: int | None = None) -> bool:
        """Is this room (or, with None, any room) in conversation?"""
        now = self.clock()
        # list(): the memory worker asks from its own thread while the loop adds rooms
        stamps = list(self._last.values()) if room_id is None else [self._last.get(room_id, float("-inf"))]
        return any(now - at < self.live_for for at in stamps)

    async def quiet(self, room_id: int | None = None) -> float:
        """Wait until the room (or every room) has been quiet for `live_for`, at most `max_wait`
        seconds; returns how long it waited. Sleeps until the earliest moment it could be quiet."""
        started = self.clock()
        while self.live(room_id):
            now = self.clock()
            left = self.max_wait - (now - started)
            if left <= 0:
                break
            stamps = self._last.values() if room_id is None else [self._last[room_id]]
            await asyncio.sleep(min(left, max(at + self.live_for - now for at in stamps)))
        return self.clock() - started
