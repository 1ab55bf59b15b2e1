"""Delivering the outbox: one send worker per platform account, so a throttled platform never blocks
another. Replies of an account leave in the order they were queued.

What happens after a failed send (see SendError):
- the platform asked us to wait (429): wait `retry_after`, then try the same message again;
- 5xx or a network error before the request went out: retry with exponential backoff (capped), forever
  (a network drop must not make the crew go silent);
- the request went out and no answer came (timeout, connection dropped): the message may have been
  delivered. Sending it again could duplicate it, and the platforms give us no way to ask, so the row
  is marked `uncertain` and logged, never resent automatically. We prefer a rare missing chunk the
  log tells you about over a duplicate the user sees;
- refused for good (blocked by the user, chat gone): `failed`, logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from nanofolks.channels.base import Channel, SendError
from nanofolks.channels.messages import OutboundMessage
from nanofolks.store.db import Database
from nanofolks.store.outbox import OutboxRepo, OutboxRow

log = logging.getLogger("nanofolks.outbox")

MAX_BACKOFF = 60.0
IDLE_CHECK = 5.0  # seconds between looks at the table when nobody woke the worker


def backoff(attempts: int) -> float:
    """Seconds before retry number `attempts` (1, 2, 4, ... capped, with jitter)."""
    return min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1)) * (0.75 + random.random() / 2)


class SendWorker:
    def __init__(self, channel: Channel, repo: OutboxRepo, db: Database):
        self.channel = channel
        self.repo = repo
        self.db = db
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the send in flight (a cancelled request could leave it `uncertain`), then exit."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        platform, account = self.channel.platform, self.channel.account
        while not self._stopping:
            self._wake.clear()  # before looking, so that a wake() while we look is not lost
            row, wait = await self.db.quick(self._take, platform, account)
            if row is None:
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                continue
            await self._send(row)

    def _take(self, platform: str, account: str) -> tuple[OutboxRow | None, float]:
        """The next due row, already claimed (one trip to the database thread); else how long to wait."""
        row = self.repo.next_pending(platform, account)
        if row is None:
            return None, IDLE_CHECK
        wait = row.next_attempt_at - time.time()
        if wait > 0:
            return None, wait
        assert row.id is not None
        return (row, 0.0) if self.repo.claim(row.id) else (None, 0.0)

    async def deliver(self, row: OutboxRow) -> str:
        """Send one row and record the outcome; returns the new state."""
        assert row.id is not None
        if not await self.db.quick(self.repo.claim, row.id):
            return "skipped"
        return await self._send(row)

    async def _send(self, row: OutboxRow) -> str:
        """Send a claimed row and record the outcome."""
        assert row.id is not None
        message = OutboundMessage(platform=row.platform, account=row.account, chat_id=row.chat_id, text=row.text,
                                  key=row.key, reply_to=row.reply_to)
        try:
            platform_id = await self.channel.send(message)
        except SendError as exc:
            return await self._failed(row, exc)
        await self.db.quick(self.repo.delivered, row.id, platform_id)
        self.sent += 1
        return "delivered"

    async def _failed(self, row: OutboxRow, exc: SendError) -> str:
        assert row.id is not None
        attempts = row.attempts + 1
        if exc.maybe_delivered:
            log.warning("outbox %s to %s:%s may have been delivered (%s); marked uncertain, not resent",
                        row.key, row.platform, row.chat_id, exc)
            await self.db.run(self.repo.uncertain, row.id, str(exc))
            return "uncertain"
        if exc.retryable:
            delay = exc.retry_after if exc.retry_after is not None else backoff(attempts)
            log.warning("outbox %s: send failed (%s); retry %d in %.1fs", row.key, exc, attempts, delay)
            await self.db.run(self.repo.retry_later, row.id, str(exc), time.time() + delay)
            return "pending"
        log.error("outbox %s to %s:%s refused for good: %s", row.key, row.platform, row.chat_id, exc)
        await self.db.run(self.repo.failed, row.id, str(exc))
        return "failed"
