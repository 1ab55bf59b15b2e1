"""The newest chat messages of each room's context, kept between turns and topped up with what was added
since, instead of read again whole: every bot's prompt and the check after every turn need them.

A window is valid while the context's start marker is the one it was read under; a compaction or a reset
writes a new marker, and the window is read again. Messages are only ever appended (ids grow in commit
order: writers are serialized), so "newer than the last id read" is exactly what was added since, by this
process or another."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from nanofolks.store.context import ContextRepo, ContextState
from nanofolks.store.messages import Message


@dataclass
class _Window:
    room_id: int
    marker_id: int
    limit: int  # how many of the newest it keeps
    messages: list[Message]  # the newest `limit` chat messages after the start, oldest first
    count: int  # every chat message after the start
    last_id: int  # the newest message id read


class ChatWindows:
    def __init__(self, repo: ContextRepo):
        self.repo = repo
        self._windows: dict[int, _Window] = {}
        self._lock = threading.Lock()  # bots of one turn read concurrently (event loop and database thread)

    def newest(self, state: ContextState, limit: int) -> tuple[list[Message], int]:
        """The newest `limit` chat messages after the context's start (oldest first), and how many there
        are in all. The lists returned are shared: read them, never change them."""
        with self._lock:
            window = self._windows.get(state.room_id)
            if window is None or window.marker_id != state.marker_id or window.limit < limit:
                window = self._read(state, limit)
            else:
                self._top_up(window)
            return window.messages[-limit:] if limit else [], window.count

    def _read(self, state: ContextState, limit: int) -> _Window:
        last_id = self.repo.last_id(state.room_id)
        messages = self.repo.since(state.room_id, state.after_id, limit=limit, through_id=last_id)
        count = self.repo.count_since(state.room_id, state.after_id, through_id=last_id)
        window = _Window(state.room_id, state.marker_id, limit, messages, count, last_id)
        self._windows[state.room_id] = window
        return window

    def _top_up(self, window: _Window) -> None:
        added = self.repo.since(window.room_id, window.last_id)
        if added:
            window.messages = (window.messages + added)[-window.limit:]
            window.count += len(added)
            window.last_id = added[-1].id or window.last_id
