"""The two messages every channel adapter speaks, whatever the platform."""

from __future__ import annotations

from dataclasses import dataclass


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
