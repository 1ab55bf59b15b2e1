"""Discord through discord.py, on the gateway's own event loop (`Client.connect` as a task, never `run`).

- Receiving: discord.py keeps the gateway WebSocket alive (heartbeats) and, after a drop, reconnects and
  RESUMEs the session, so Discord replays what was missed. Each MESSAGE_CREATE is handed to `on_message`
  (which writes the inbox) one at a time, in arrival order.
- Durability: Discord has no acknowledgement and no redelivery. A message is safe once `on_message`
  returned; one that arrives while the process dies (before the inbox write) is lost. A failing store
  is retried a few times, then the loss is logged with the message id.
- Who is heard: direct messages; in guilds only a mention of the bot, a reply to one of its messages,
  or any message in a channel listed in `openChannels` (the shared access policy then also skips the
  sender check there). Our own messages are always ignored, other bots' unless `allowBots`.
- Threads are their own chat (chat id = thread id, chat type "thread"): the gateway gives an unmapped
  thread a room of its own.
- Sending: Markdown passes through (Discord renders it), split under 2000 characters, fence-aware.
  Replies in guilds reference the message they answer; no reply pings anyone but its addressee.
  A 429 that discord.py does not wait out itself (longer than MAX_RATELIMIT_WAIT, or without a `Via`
  header) becomes a retryable SendError carrying the wait.
- The bot needs the privileged Message Content intent (developer portal, Bot page): without it guild
  messages arrive without text.
- `apiBase`/`gatewayUrl` retarget discord.py through two class attributes, so there is one Discord
  host per process (the gateway runs one Discord account)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

from nanofolks.channels.base import ChannelError, OnMessage, SendError
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.config.schema import DiscordConfig

log = logging.getLogger("nanofolks.discord")

START_TIMEOUT = 60.0  # seconds from login to READY before start() gives up
GUILD_READY_TIMEOUT = 2.0  # discord.py waits this long after the last GUILD_CREATE before READY
MAX_RATELIMIT_WAIT = 30.0  # longer 429 waits go back to the outbox instead of holding the send (min 30)
STORE_ATTEMPTS = 3
RETRY_CONNECT = 2.0  # seconds between first-connection attempts at start
_SPACES = re.compile(r"[ \t]{2,}")


def use_hosts(api_base: str, gateway_url: str) -> None:
    """Point discord.py at another Discord (self-hosted or a test server). Process-wide: discord.py
    reads both from class attributes and has no per-client option."""
    import discord
    import yarl

    defaults = DiscordConfig()
    if api_base.rstrip("/") != defaults.api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url != defaults.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def _make_client(channel: DiscordChannel, guild_ready_timeout: float) -> Any:
    import discord

    class _Client(discord.Client):
        async def on_ready(self) -> None:
            channel._connected("ready")

        async def on_resumed(self) -> None:
            channel._connected("resumed")

        async def on_disconnect(self) -> None:
            channel._disconnected()

        async def on_message(self, message: discord.Message) -> None:
            await channel._receive(message)

    intents = discord.Intents.default()
    intents.message_content = True  # privileged: enable it for the bot in the developer portal
    return _Client(intents=intents, guild_ready_timeout=guild_ready_timeout,
                   max_ratelimit_timeout=MAX_RATELIMIT_WAIT, chunk_guilds_at_startup=False)


class DiscordChannel:
    platform = "discord"

    def __init__(self, config: DiscordConfig, *, start_timeout: float = START_TIMEOUT,
                 guild_ready_timeout: float = GUILD_READY_TIMEOUT):
        if not config.token:
            raise ChannelError("channels.discord.token is empty")
        self.config = config
        self.start_timeout = start_timeout
        self.guild_ready_timeout = guild_ready_timeout
        self.username = ""
        self.reconnects = 0  # connections resumed or re-identified after a drop
        self._guilds = {str(g).strip() for g in config.guilds if str(g).strip()}
        self._open = {str(c).strip() for c in config.open_groups if str(c).strip()}
        self._client: Any = None  # discord.Client, imported lazily
        self._task: asyncio.Task | None = None
        self._on_message: OnMessage | None = None
        self._in_order = asyncio.Lock()  # FIFO: messages reach the inbox in the order they arrived
        self._account = ""
        self._state = "stopped"
        self._was_ready = False

    # --- identity and state -----------------------------------------------------------------------

    @property
    def account(self) -> str:
        return self._account

    @property
    def state(self) -> str:
        return self._state

    def _connected(self, how: str) -> None:
        if self._was_ready:
            self.reconnects += 1
            log.info("discord: gateway connection back (%s)", how)
        self._was_ready = True
        self._state = "running"

    def _disconnected(self) -> None:
        if self._state != "stopped":
            self._state = "reconnecting"
            log.warning("discord: gateway connection lost; discord.py reconnects and resumes")

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        import aiohttp
        import discord

        use_hosts(self.config.api_base, self.config.gateway_url)
        self._on_message = on_message
        self._state = "starting"
        client = self._client = _make_client(self, self.guild_ready_timeout)
        try:
            await client.login(self.config.token)  # GET /users/@me
        except discord.LoginFailure as exc:
            await client.close()
            raise ChannelError(f"discord rejected the bot token: {exc}") from exc
        except (aiohttp.ClientError, OSError, discord.HTTPException) as exc:
            await client.close()
            raise ChannelError(f"discord API at {self.config.api_base} unreachable: {exc}") from exc
        self._account, self.username = str(client.user.id), client.user.name
        await self._connect(client)
        self._task.add_done_callback(self._gateway_ended)
        log.info("discord: signed in as %s (%s)", self.username, self._account)

    async def _connect(self, client: Any) -> None:
        """Open the gateway connection and wait for READY. discord.py reconnects by itself only once it
        was connected (before that its connect() dies after one failure), so the first one is retried here."""
        import discord

        deadline = time.monotonic() + self.start_timeout
        while True:
            self._task = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
            ready = asyncio.create_task(client.wait_until_ready())
            left = deadline - time.monotonic()
            await asyncio.wait({self._task, ready}, timeout=max(0.0, left), return_when=asyncio.FIRST_COMPLETED)
            if ready.done():
                return
            ready.cancel()
            error = self._task.exception() if self._task.done() and not self._task.cancelled() else None
            fatal = isinstance(error, discord.LoginFailure | discord.PrivilegedIntentsRequired)
            if error is None or fatal or time.monotonic() + RETRY_CONNECT >= deadline:
                await self.stop()
                if fatal:
                    raise ChannelError(_gateway_error(error)) from error
                why = f"failed ({type(error).__name__}: {error})" if error else "sent no READY"
                raise ChannelError(f"discord gateway at {self.config.gateway_url} {why} "
                                   f"within {self.start_timeout:.0f}s") from error
            log.warning("discord: gateway connection failed (%s: %s); retrying", type(error).__name__, error)
            await asyncio.sleep(RETRY_CONNECT)

    def _gateway_ended(self, task: asyncio.Task) -> None:
        """connect(reconnect=True) only returns on close() or a fatal error (token revoked, intents)."""
        if task.cancelled() or self._state == "stopped":
            return
        error = task.exception()
        self._state = "error"
        log.error("discord: the gateway connection ended for good: %s", _gateway_error(error) if error else "closed")

    async def stop(self) -> None:
        self._state = "stopped"
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5.0)

    # --- receiving --------------------------------------------------------------------------------

    async def _receive(self, message: Any) -> None:
        msg = self._parse(message)
        if msg is None:
            return
        async with self._in_order:  # discord.py runs each event in its own task
            for attempt in range(1, STORE_ATTEMPTS + 1):
                try:
                    await self._on_message(msg)  # type: ignore[misc]
                    return
                except Exception:
                    if attempt == STORE_ATTEMPTS:
                        log.exception("discord: message %s in %s LOST: could not be stored (Discord does not "
                                      "deliver it again)", msg.message_id, msg.chat_id)
                        return
                    log.warning("discord: could not store message %s; retrying", msg.message_id, exc_info=True)
                    await asyncio.sleep(attempt)

    def _parse(self, message: Any) -> InboundMessage | None:
        """The message as the gateway sees it, or None (logged) for what the crew does not answer."""
        import discord

        me = self._client.user
        author, guild, channel = message.author, message.guild, message.channel
        where = f"{channel.id}/{message.id}"
        if author.id == me.id:
            return None  # our own replies come back as MESSAGE_CREATE
        if author.bot and not self.config.allow_bots:
            log.info("discord: %s skipped (from a bot; see channels.discord.allowBots)", where)
            return None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            log.info("discord: %s skipped (a %s notice, not a message)", where, message.type.name)
            return None
        if guild is not None and self._guilds and str(guild.id) not in self._guilds:
            log.info("discord: %s skipped (guild %s is not in channels.discord.guilds)", where, guild.id)
            return None
        if not message.content:
            hint = " (enable the Message Content intent?)" if guild is not None and not message.attachments else ""
            log.info("discord: %s skipped (no text%s)", where, hint)
            return None
        chat_id = str(channel.id)
        mentioned = any(user.id == me.id for user in message.mentions) or _replies_to(message, me.id)
        if guild is not None and ("*" in self._open or chat_id in self._open):
            mentioned = True  # an open channel: every message is for the crew
        if guild is None:
            chat_type = "private"
        else:
            chat_type = "thread" if isinstance(channel, discord.Thread) else "group"
        return InboundMessage(
            platform=self.platform, account=self.account, chat_id=chat_id, message_id=str(message.id),
            text=_clean(message, me.id), sender_id=str(author.id), sender_username=author.name,
            sender_name=author.display_name, chat_type=chat_type, mentioned=mentioned,
        )

    # --- sending ----------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str:
        import discord

        try:
            target = self._client.get_partial_messageable(int(message.chat_id))
            reference = None
            if message.reply_to:
                reference = discord.MessageReference(message_id=int(message.reply_to), channel_id=target.id,
                                                     fail_if_not_exists=False)
            # The crew's words never ping @everyone, roles or people; a reply notifies its addressee.
            mentions = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
            sent = await target.send(message.text, reference=reference, allowed_mentions=mentions)
        except Exception as exc:  # noqa: BLE001 - classified for the outbox just below
            raise _send_error(exc) from exc
        return str(sent.id)

    async def typing(self, chat_id: str) -> None:
        try:
            await self._client.get_partial_messageable(int(chat_id)).typing()  # shows for ~10 s
        except Exception as exc:  # noqa: BLE001 - a missing typing indicator is no reason to fail a turn
            log.debug("discord: typing failed: %s", exc)


def _replies_to(message: Any, my_id: int) -> bool:
    import discord

    resolved = message.reference.resolved if message.reference else None
    return isinstance(resolved, discord.Message) and resolved.author.id == my_id


def _clean(message: Any, my_id: int) -> str:
    """The text without our own mention; other people's mentions as @names a model can read."""
    text = re.sub(rf"<@!?{my_id}>", "", message.content)
    for user in message.mentions:
        text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
    return _SPACES.sub(" ", text).strip()


def _gateway_error(error: BaseException) -> str:
    import discord

    if isinstance(error, discord.PrivilegedIntentsRequired):
        return ("discord refused the Message Content intent: enable it for this bot in the developer portal "
                "(Bot > Privileged Gateway Intents)")
    if isinstance(error, discord.LoginFailure):
        return f"discord rejected the bot token: {error}"
    return f"discord gateway failed: {type(error).__name__}: {error}"


def _retry_after(exc: Any) -> float | None:
    """The wait a 429 asked for, from its headers (discord.py keeps the response, not the JSON body)."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return float(headers[name])
    return None


def _send_error(exc: Exception) -> SendError:
    """Sort a failed send: wait and retry, retry with backoff, never resend (maybe delivered), or give up."""
    import aiohttp
    import discord

    if isinstance(exc, discord.RateLimited):  # longer than MAX_RATELIMIT_WAIT: the outbox waits instead
        return SendError(str(exc), retryable=True, retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:  # discord.py gave up (no Via header: a Cloudflare limit, or retries used up)
            return SendError(f"rate limited: {exc}", retryable=True, retry_after=_retry_after(exc))
        if exc.status >= 500:  # Discord answered with an error: it did not take the message
            return SendError(f"discord {exc.status}: {exc}", retryable=True)
        return SendError(f"discord refused the message ({exc.status}): {exc}")  # 403, 404, 400: resending won't help
    if isinstance(exc, aiohttp.ClientConnectorError):  # the request never went out
        return SendError(f"{type(exc).__name__}: {exc}", retryable=True)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return SendError(f"connection lost after the request went out ({type(exc).__name__})", maybe_delivered=True)
    return SendError(f"{type(exc).__name__}: {exc}")  # a bad chat id and the like: resending won't help
