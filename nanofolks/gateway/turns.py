"""Answering one inbox row: a chat command, the help text or a turn of the crew. The reply is queued in
the outbox in the same transaction that marks the row done, so a message is answered exactly once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import cast

from nanofolks import identity
from nanofolks.channels.access import is_owner
from nanofolks.channels.base import Channel, ShowsTyping, Streams
from nanofolks.channels.registry import CHANNELS, ChannelSpec
from nanofolks.gateway.commands import HELP, OWNER_ONLY, parse_command
from nanofolks.routines.activity import Activity
from nanofolks.services import Services
from nanofolks.store.inbox import InboxRepo, InboxRow, mark_done
from nanofolks.store.outbox import OutboxRow
from nanofolks.store.rooms import Room

log = logging.getLogger("nanofolks.gateway")

TYPING_AFTER = 1.0  # a quick answer needs no indicator: one Bot API call less per message
TYPING_EVERY = 4.0  # Telegram shows "typing" for about 5 seconds
FALLBACK = "Sorry, the crew had nothing to say to that. Please try again or rephrase."
STILL_WORKING = "Still working on it…"


class AlreadyAnswered(Exception):
    """The inbox row was answered meanwhile: the turn's writes are rolled back, nothing is sent twice."""


class Answerer:
    def __init__(self, services: Services, before_turn: Callable[[], Awaitable[None]], activity: Activity):
        self.services = services
        self.db = services.db
        self.inbox = InboxRepo(self.db)
        self._before_turn = before_turn  # what a turn waits for first (litellm imported at start)
        self.activity = activity  # rooms in conversation: background work waits for them

    async def answer(self, channel: Channel | None, spec: ChannelSpec, inbox_id: int,
                     wake: Callable[[], None] = lambda: None) -> bool:
        """Answer the row if it is still pending; True when a reply was queued for the channel to send.
        `wake` tells the channel's sender that a row was queued meanwhile (a "still working" notice).
        `channel` is None on a worker of a fleet that does not poll this bot: it cannot show typing."""
        row, room, scope = await self.db.quick(self._load, inbox_id)
        if row is None or row.status != "pending":
            return False
        parsed = parse_command(row.text)
        if parsed is not None:
            command, arg = parsed
            if command.owner_only and not self._is_owner(row):
                reply = OWNER_ONLY
            else:
                reply = await self.db.run(command.answer, self.services.rooms, row, arg)
        elif room is None:
            reply = HELP
        else:
            self.activity.touch(room.id)
            reply = await self._turn(channel, spec, row, room, scope, wake)
        return reply is None or await self.db.quick(self._complete, self._reply(spec, row, reply))

    def _load(self, inbox_id: int) -> tuple[InboxRow | None, Room | None, tuple[int, ...] | None]:
        """The inbox row and, when it needs a turn, its room and the rooms the sender's memory may see
        (None: all, the owner): one trip to the database thread."""
        row = self.inbox.get(inbox_id)
        if row is None or row.status != "pending" or parse_command(row.text) is not None or not row.text.strip():
            return row, None, None
        owner = self._is_owner(row)
        room = self.services.rooms.for_conversation(row.platform, row.chat_id, row.chat_type, owner=owner,
                                                    shared_dms=self.services.config.channels.shared_dms)
        repo = self.services.rooms.repo
        person = identity.person(row.platform, row.sender_id)
        repo.add_person(room.id, person)
        return row, room, None if owner else repo.rooms_of(person)

    def _is_owner(self, row: InboxRow) -> bool:
        return is_owner(CHANNELS[row.platform].section(self.services.config).allow_from, row.sender_id)

    async def _turn(self, channel: Channel | None, spec: ChannelSpec, row: InboxRow, room: Room,
                    scope: tuple[int, ...] | None, wake: Callable[[], None]) -> str | None:
        """Run the turn. Its replies are stored, the inbox row marked done and the outbox rows queued in
        one transaction (None returned); when the turn fails, the apology to send instead."""
        await self._before_turn()
        # While the crew works the person sees it: "typing..." where the platform has it (and this worker
        # polls the bot), else one short line.
        waiting = asyncio.create_task(_typing(cast(ShowsTyping, channel), row.chat_id) if spec.typing and channel
                                      else self._still_working(spec, row, wake))
        streaming = cast(Streams, channel) if spec.streams and channel else None
        started = time.monotonic()
        try:
            await self.services.pipeline.handle(
                room, row.text, sender=row.sender_name or row.sender_id, person=identity.person(row.platform, row.sender_id),
                platform=row.platform,
                turn_id=f"{row.platform}-inbox-{row.id}", chat=f"{row.platform}:{row.chat_id}", scope=scope,
                on_token=(lambda bot, piece: streaming.stream(row.chat_id, row.message_id, bot, piece))
                if streaming else None,
                commit=lambda answer: self._reply(spec, row, answer.markdown()),
            )
            reply = None
        except asyncio.CancelledError:
            raise
        except AlreadyAnswered:
            return None
        except Exception as exc:  # noqa: BLE001 - the user gets an honest answer, never silence
            log.exception("inbox %s: the turn failed", row.id)
            reply = f"Sorry, something went wrong on my side and I could not answer this ({type(exc).__name__})."
        finally:
            waiting.cancel()
        log.info("inbox %s answered in #%s in %.1fs", row.id, room.name, time.monotonic() - started)
        return reply

    async def _still_working(self, spec: ChannelSpec, row: InboxRow, wake: Callable[[], None]) -> None:
        """After `orchestrator.stillWorkingAfter` seconds, one notice, queued only while the row is unanswered
        (never after the answer)."""
        after = self.services.config.orchestrator.still_working_after
        if after <= 0:
            return
        await asyncio.sleep(after)
        assert row.id is not None
        notice = self._rows(spec, row, STILL_WORKING, key=f"inbox:{row.id}:working")
        if await self.db.quick(self.inbox.queue_while_pending, row.id, notice):
            wake()

    def _complete(self, queue: Callable[[sqlite3.Connection], None]) -> bool:
        """Answer without a turn (a command, help, an apology). False when the row was answered meanwhile."""
        try:
            with self.db.write() as conn:
                queue(conn)
        except AlreadyAnswered:
            return False
        return True

    def _reply(self, spec: ChannelSpec, row: InboxRow, markdown: str) -> Callable[[sqlite3.Connection], None]:
        """Render the reply for the platform now, outside any transaction; what is returned runs inside the
        write transaction: mark the inbox row done and queue one outbox row per chunk."""
        assert row.id is not None
        inbox_id = row.id
        rows = self._rows(spec, row, markdown.strip() or FALLBACK, key=f"inbox:{inbox_id}")

        def queue(conn: sqlite3.Connection) -> None:
            if not mark_done(conn, inbox_id, rows):
                raise AlreadyAnswered(inbox_id)

        return queue

    @staticmethod
    def _rows(spec: ChannelSpec, row: InboxRow, markdown: str, key: str) -> list[OutboxRow]:
        """Outbox rows answering an inbox row, one per chunk (keys `key:0`, `key:1`...)."""
        # Groups get replies to the message; direct chats plain answers, unless the platform threads them.
        threaded = row.chat_type != "private" or spec.threads_direct_replies
        return [OutboxRow(key=f"{key}:{i}", inbox_id=row.id, platform=row.platform, account=row.account,
                          chat_id=row.chat_id, text=chunk, reply_to=row.message_id if threaded else None)
                for i, chunk in enumerate(spec.render(markdown))]


async def _typing(channel: ShowsTyping, chat_id: str) -> None:
    await asyncio.sleep(TYPING_AFTER)
    while True:
        await channel.typing(chat_id)
        await asyncio.sleep(TYPING_EVERY)
