"""The two messages every channel adapter speaks, whatever the platform."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from nanofolks.text import valid_text

RAW_CHARS = 2000  # how much of a rejected update is kept for the owner to look at


@dataclass
class InboundMessage:
    """A text message from a platform chat, as the adapter understood it."""

    platform: str  # "telegram", ...
    account: str  # the bot account that received it (Telegram: the bot's user id)
    chat_id: str
    message_id: str
    text: str  # the bot's own @mention already removed
    sender_id: str
    sender_username: str = ""  # without the "@"
    sender_name: str = ""  # display name, for logs and the room history
    chat_type: str = "private"  # private | group
    mentioned: bool = False  # the bot was @mentioned, or the message replies to one of its messages

    def __post_init__(self) -> None:  # the edge: nothing invalid gets past here into the store
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                setattr(self, f.name, valid_text(value))

    @property
    def is_group(self) -> bool:
        return self.chat_type != "private"


@dataclass
class OutboundMessage:
    """One platform message to send, as the registry's `render` made it: in the platform's markup, within
    its limit."""

    platform: str
    account: str
    chat_id: str
    text: str  # sent as is
    key: str  # idempotency key, stable across retries and restarts
    reply_to: str | None = None  # the platform message id this answers (used in groups)


@dataclass
class Rejected:
    """An update the adapter could not make sense of. It is handed over like a message, so it is recorded
    (with its reason) before the platform is told it arrived; then it is skipped, never retried."""

    platform: str
    account: str
    ref: str  # the platform's id of the update, when it had one
    reason: str
    raw: str = ""

    @classmethod
    def of(cls, platform: str, account: str, ref: object, reason: str, raw: Any) -> Rejected:
        try:
            shown = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=repr)
        except (TypeError, ValueError, RecursionError):
            shown = repr(raw)
        return cls(platform, account, valid_text(str(ref if ref is not None else "")), valid_text(reason)[:500],
                   valid_text(shown[:RAW_CHARS]))
