"""The contract every chat platform adapter implements; channels/registry.py says which platforms exist
and which of the optional parts below (typing, a command menu) each one has.

An adapter only talks to its platform. Access control, the inbox and outbox, rooms and the crew are
the gateway's job; the adapter hands each incoming message to `on_message` and sends what it is given.

Durability rests on one rule: the adapter acknowledges a message to its platform (Telegram: the next
getUpdates offset) only after `on_message` has returned, because that is when it is in the inbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nanofolks.channels.messages import InboundMessage, OutboundMessage, Rejected

# Takes a message, or an update the adapter could not parse (recorded, then confirmed and skipped).
OnMessage = Callable[[InboundMessage | Rejected], Awaitable[None]]


class SendError(Exception):
    """A send the platform did not accept. The flags tell the outbox what to do next:

    - retryable: trying again later may work (rate limit, 5xx, network error before the request went out)
    - retry_after: seconds the platform asked us to wait (a 429), if it said
    - maybe_delivered: the request went out and no answer came back; resending could duplicate it
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None,
                 maybe_delivered: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered


class ChannelError(Exception):
    """The channel cannot start (bad token, unreachable API, another poller holds the token)."""


class Channel(Protocol):
    platform: str  # "telegram"
    username: str  # the bot's name on the platform, for `nanofolks status`; known once start() returned

    @property
    def account(self) -> str:
        """This bot's account id on the platform; known once start() returned."""
        ...

    @property
    def state(self) -> str:
        """A short word for `nanofolks status`: starting, running, reconnecting, stopped."""
        ...

    async def start(self, on_message: OnMessage) -> None:
        """Connect and identify; then receive in the background, calling `on_message` for each message
        and acknowledging it to the platform only after the call returned. No update stops the receiver:
        one that cannot be parsed is handed over as a `Rejected` (then acknowledged like a message)."""

    async def stop(self) -> None:
        """Stop receiving and close connections, within a few seconds."""

    async def send(self, message: OutboundMessage) -> str:
        """Send one chunk, already in the platform's markup and within its limit (the registry's `render`
        made it); returns the platform's id of the delivered message, or raises SendError."""
        ...


class ShowsTyping(Protocol):
    """A channel whose registry entry says `typing`."""

    async def typing(self, chat_id: str) -> None:
        """Show that the crew is working (best effort: errors are swallowed)."""


class CommandMenu(Protocol):
    """A channel whose registry entry says `command_menu`."""

    async def register_commands(self, commands: list[tuple[str, str]]) -> None:
        """Show these (name, description) pairs in the app's command menu."""


class Streams(Protocol):
    """A channel whose registry entry says `streams`."""

    def stream(self, chat_id: str, turn: str, bot: str, piece: str) -> None:
        """A piece of `bot`'s reply to the message `turn` as it is written (called on the event loop; must
        not block). The stored reply still arrives through `send`, as on every other channel."""


class ServesPages(Protocol):
    """A channel whose registry entry says `serves_pages` (the dashboard)."""

    def attach(self, services: Any) -> None:
        """Given the gateway's services (store, crew, memory) before `start`."""
