"""In-process news for open pages: pieces of replies as they are written, and "look again" nudges when a
reply was delivered. Everything durable is in the database; this only saves a page from waiting for its
next look."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

QUEUE = 1000  # a page that stopped reading loses pieces, never blocks the crew


class Hub:
    def __init__(self) -> None:
        self._queues: defaultdict[str, set[asyncio.Queue[Any]]] = defaultdict(set)

    @contextlib.contextmanager
    def subscribe(self, topic: str) -> Iterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE)
        self._queues[topic].add(queue)
        try:
            yield queue
        finally:
            self._queues[topic].discard(queue)
            if not self._queues[topic]:
                del self._queues[topic]

    def publish(self, topic: str, item: Any) -> None:
        """Called on the event loop; never waits."""
        for queue in self._queues.get(topic, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(item)
