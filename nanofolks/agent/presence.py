"""What each bot is doing right now in this process: thinking (waiting on its model), working (running a
tool) or idle. The loop marks it; the dashboard's org chart reads it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class Presence:
    def __init__(self) -> None:
        self._busy: dict[str, Counter[str]] = {}  # bot -> how many of its calls are in each state

    @contextmanager
    def doing(self, bot: str, what: str) -> Iterator[None]:
        """`bot` is `what` (thinking | working) until the block ends; several turns may overlap."""
        counts = self._busy.setdefault(bot, Counter())
        counts[what] += 1
        try:
            yield
        finally:
            counts[what] -= 1

    def of(self, bot: str) -> str:
        counts = self._busy.get(bot, Counter())
        return "working" if counts["working"] > 0 else "thinking" if counts["thinking"] > 0 else "idle"


PRESENCE = Presence()  # one per process: the gateway's bots and its dashboard share it
