"""Durable ingress: the access check, then the inbox row, before the platform is acknowledged.

A stranger's message is recorded without its text (for dedupe) together with the pairing-code reply,
in one transaction: the text never reaches a room or a model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanofolks.channels.access import AccessPolicy, pairing_text
from nanofolks.channels.messages import InboundMessage
from nanofolks.store.db import Database
from nanofolks.store.inbox import InboxRepo, InboxRow
from nanofolks.store.outbox import OutboxRow

if TYPE_CHECKING:
    from nanofolks.secrets.keeper import Keeper

log = logging.getLogger("nanofolks.inbox")


@dataclass
class Received:
    outcome: str  # accepted | duplicate | paired | ignored
    inbox_id: int | None = None
    notice: bool = False  # a reply was queued at once (the secrets notice): the sender has work


class Ingress:
    def __init__(self, access: AccessPolicy, inbox: InboxRepo, db: Database, render: Callable[[str], list[str]],
                 keeper: Keeper | None = None):
        self.access = access
        self.inbox = inbox
        self.db = db
        self.render = render  # the platform's renderer (channels/registry.py): Markdown -> chunks to send
        self.keeper = keeper  # secrets in a message are kept in the vault before the row is written

    async def receive(self, msg: InboundMessage) -> Received:
        return await self.db.quick(self._receive, msg)

    def _receive(self, msg: InboundMessage) -> Received:
        decision = self.access.decide(msg)
        where = f"{msg.platform}:{msg.chat_id}/{msg.message_id}"
        if decision.action == "ignore":
            log.info("ignored %s: %s", where, decision.reason)
            return Received("ignored")
        row = InboxRow(platform=msg.platform, account=msg.account, chat_id=msg.chat_id, message_id=msg.message_id,
                       text=msg.text, chat_type=msg.chat_type, sender_id=msg.sender_id,
                       sender_name=msg.sender_username or msg.sender_name)
        if decision.action == "pair":
            row.text, row.status = "", "denied"
            inbox_id = self.inbox.add(row, self._reply(msg, f"{where}:pairing", pairing_text(msg.platform, decision.code)))
            if inbox_id is None:
                return Received("duplicate")
            log.info("pairing code sent for %s (%s)", where, decision.reason)
            return Received("paired", inbox_id)
        notices: list[OutboxRow] = []
        if self.keeper is not None and row.text:
            captured = self.keeper.capture(row.text, f"{msg.platform}:{msg.chat_id}")
            row.text = captured.text
            if captured.notice():  # told once, in the same transaction as the row: a redelivery adds nothing
                notices = self._reply(msg, f"{where}:secrets", captured.notice())
        inbox_id = self.inbox.add(row, notices)
        if inbox_id is None:
            log.info("redelivered %s recognised; not processed again", where)
            return Received("duplicate")
        return Received("accepted", inbox_id, notice=bool(notices))

    def _reply(self, msg: InboundMessage, key: str, markdown: str) -> list[OutboxRow]:
        """The outbox rows of a reply sent without a turn, rendered for the platform before any transaction."""
        return [OutboxRow(key=f"{key}:{i}", platform=msg.platform, account=msg.account, chat_id=msg.chat_id, text=chunk)
                for i, chunk in enumerate(self.render(markdown))]
