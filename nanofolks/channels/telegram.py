"""Telegram through python-telegram-bot, long polling driven by hand for durable ingress.

PTB's `Updater` confirms fetched updates with its next getUpdates offset whether or not they were
processed, so a crash would lose them. Here each update is handed to `on_message` (which writes the
inbox) and only then does the offset move past it. Updates are fetched raw and parsed one by one, so
one malformed update is logged and skipped instead of wedging the poller.

With `webhookUrl` set, Telegram posts updates to the gateway instead (aiohttp on webhookListen:webhookPort):
each is answered 200 only once it is stored, and requests without the secret token are refused.

Requests go to `{apiBase}/bot{token}/{method}`, exactly as the public Bot API, so a self-hosted Bot
API server or a loopback test server works."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import re
import time
import warnings
from typing import Any
from urllib.parse import urlsplit

from nanofolks.channels.base import ChannelError, OnMessage, SendError
from nanofolks.channels.formatting import telegram_text
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.config.schema import TelegramConfig

log = logging.getLogger("nanofolks.telegram")

WATCHDOG_GRACE = 30.0  # seconds past the long-poll timeout before a getUpdates counts as stalled
MAX_BACKOFF = 30.0
WEBHOOK_MAX_BODY = 1 << 20  # an update is a few KB; a bigger body is refused (413) before it is read


class TelegramChannel:
    platform = "telegram"

    def __init__(self, config: TelegramConfig, watchdog_grace: float = WATCHDOG_GRACE):
        if not config.token:
            raise ChannelError("channels.telegram.token is empty")
        self.config = config
        self._bot: Any = None  # telegram.Bot, imported lazily
        self._bot_id = 0
        self.username = ""
        self._state = "stopped"
        self._offset: int | None = None
        self._poll_task: asyncio.Task | None = None
        self._watchdog_task: asyncio.Task | None = None
        self._request_started: float | None = None  # monotonic start of the getUpdates in flight
        self._on_message: OnMessage | None = None
        self.restarts = 0  # polling restarts by the watchdog
        self._webhook: Any = None  # aiohttp AppRunner in webhook mode
        self.watchdog_grace = watchdog_grace

    # --- identity -------------------------------------------------------------------------------

    @property
    def account(self) -> str:
        return str(self._bot_id)

    @property
    def state(self) -> str:
        return self._state

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        from telegram import Bot
        from telegram.error import InvalidToken, NetworkError
        from telegram.request import HTTPXRequest

        # do_api_request warns that getUpdates has a typed twin; we want the raw JSON on purpose.
        warnings.filterwarnings("ignore", message=r"Please use 'Bot\.getUpdates'")
        self._state = "starting"
        self._on_message = on_message
        poll = self.config.poll_timeout
        self._bot = Bot(
            self.config.token,
            base_url=f"{self.config.api_base.rstrip('/')}/bot",
            request=HTTPXRequest(connection_pool_size=8, connect_timeout=10, read_timeout=20, write_timeout=20),
            get_updates_request=HTTPXRequest(connection_pool_size=1, connect_timeout=10, read_timeout=poll + 10),
        )
        for attempt in range(5):
            try:
                await self._bot.initialize()  # getMe
                break
            except InvalidToken as exc:
                raise ChannelError(f"telegram rejected the bot token: {exc}") from exc
            except NetworkError as exc:
                if attempt == 4:
                    raise ChannelError(f"telegram API at {self.config.api_base} unreachable: {exc}") from exc
                log.warning("telegram: getMe failed (%s); retrying", exc)
                await asyncio.sleep(2**attempt)
        me = self._bot.bot
        self._bot_id, self.username = me.id, me.username or ""
        self._mention = re.compile(rf"@{re.escape(self.username)}\b", re.IGNORECASE) if self.username else None
        log.info("telegram: signed in as @%s (%s)", self.username, self._bot_id)
        if self.config.webhook_url:
            await self._start_webhook()
            return
        await self._remove_webhook()
        self._poll_task = asyncio.create_task(self._poll_forever(), name="telegram-poll")
        self._watchdog_task = asyncio.create_task(self._watchdog(), name="telegram-watchdog")

    async def stop(self) -> None:
        self._state = "stopped"
        await _cancel(self._watchdog_task)  # first: it may be about to start a new poll task
        await _cancel(self._poll_task)
        if self._webhook is not None:
            await self._webhook.cleanup()  # the webhook stays set: Telegram keeps the updates until the next start
            self._webhook = None
        if self._bot is not None:
            with contextlib.suppress(Exception):
                await self._bot.shutdown()

    async def register_commands(self, commands: list[tuple[str, str]]) -> None:
        from telegram import BotCommand

        await self._bot.set_my_commands([BotCommand(name, text) for name, text in commands])

    # --- receiving ------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        from telegram.error import Conflict, InvalidToken, TelegramError

        backoff = 1.0
        while True:
            try:
                updates = await self._get_updates()
            except asyncio.CancelledError:
                raise
            except Conflict as exc:  # another process polls this token (another machine, or a webhook)
                self._state = "conflict"
                log.error("telegram: another poller uses this token (%s); retrying in %.0fs", exc, backoff)
            except InvalidToken as exc:
                self._state = "error"
                log.error("telegram: token rejected (%s); retrying in %.0fs", exc, backoff)
            except (TelegramError, OSError) as exc:
                self._state = "reconnecting"
                log.warning("telegram: getUpdates failed (%s); retrying in %.0fs", exc, backoff)
            else:
                self._state, backoff = "running", 1.0
                if await self._ingest(updates):
                    continue
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    # --- receiving by webhook ---------------------------------------------------------------------

    async def _start_webhook(self) -> None:
        """Listen on webhookListen:webhookPort at the URL's path, then tell Telegram the URL. An update is
        answered 200 only once it is stored; any other answer makes Telegram deliver it again later."""
        from aiohttp import web
        from telegram.error import TelegramError

        config = self.config
        app = web.Application(client_max_size=WEBHOOK_MAX_BODY)
        app.router.add_post(urlsplit(config.webhook_url).path or "/", self._on_webhook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, config.webhook_listen, config.webhook_port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ChannelError(f"telegram webhook: cannot listen on {config.webhook_listen}:{config.webhook_port}:"
                               f" {exc}") from exc
        self._webhook = runner
        try:
            await self._bot.set_webhook(config.webhook_url, secret_token=self._webhook_secret,
                                        allowed_updates=["message"])
            info = await self._bot.get_webhook_info()
        except TelegramError as exc:
            raise ChannelError(f"telegram refused the webhook {config.webhook_url}: {exc}") from exc
        log.info("telegram: webhook %s set (listening on %s:%s; %d updates waiting)", config.webhook_url,
                 config.webhook_listen, config.webhook_port, info.pending_update_count)
        self._state = "running"

    async def _remove_webhook(self) -> None:
        """getUpdates is refused while a webhook is set (one left by an earlier webhook run, say): remove it;
        the updates it still holds come by polling. Not fatal: a webhook still set shows as a conflict."""
        from telegram.error import TelegramError

        try:
            if (await self._bot.get_webhook_info()).url:
                await self._bot.delete_webhook(drop_pending_updates=False)
                log.info("telegram: webhook removed, long polling from now on")
        except TelegramError as exc:
            log.warning("telegram: could not check for a webhook (%s); polling anyway", exc)

    @property
    def _webhook_secret(self) -> str:
        """The configured secret, or one derived from the bot token: the same at every start, never logged."""
        derived = hashlib.sha256(f"nanofolks-webhook:{self.config.token}".encode()).hexdigest()
        return self.config.webhook_secret or derived

    async def _on_webhook(self, request: Any) -> Any:
        from aiohttp import web

        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self._webhook_secret.encode()):
            log.warning("telegram webhook: request from %s without the secret token refused", request.remote)
            return web.Response(status=403)
        try:
            raw = await request.json()
        except ValueError:
            raw = None
        if not isinstance(raw, dict):
            log.warning("telegram webhook: a body that is not a JSON object was refused")
            return web.Response(status=400)
        stored = await self._ingest([raw])
        return web.Response(status=200 if stored else 500)  # 500: Telegram sends it again later

    # --- receiving by long polling ------------------------------------------------------------------

    async def _get_updates(self) -> list[Any]:
        poll = self.config.poll_timeout
        self._request_started = time.monotonic()
        try:
            result = await self._bot.do_api_request(
                "getUpdates",
                api_kwargs={"offset": self._offset, "timeout": poll, "allowed_updates": ["message"]},
                read_timeout=poll + 10,
            )
        finally:
            self._request_started = None
        if not isinstance(result, list):
            log.warning("telegram: getUpdates returned %s, not a list; ignored", type(result).__name__)
            return []
        return result

    async def _ingest(self, updates: list[Any]) -> bool:
        """Hand each update over, moving the offset past it only once it is stored. False when the
        store failed: the offset stays, so Telegram delivers the rest again after a pause."""
        for raw in updates:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if not isinstance(update_id, int):
                log.warning("telegram: update without an update_id skipped: %.200r", raw)
                continue
            message = self._parse(raw)
            if message is not None:
                try:
                    await self._on_message(message)  # type: ignore[misc]
                except Exception:
                    log.exception("telegram: could not store update %s; will fetch it again", update_id)
                    return False
            self._offset = update_id + 1
        return True

    def _parse(self, raw: dict[str, Any]) -> InboundMessage | None:
        """The text message in an update, or None (logged) for anything the crew does not answer."""
        from telegram import MessageEntity, Update

        update_id = raw.get("update_id")
        try:
            update = Update.de_json(raw, self._bot)
        except Exception as exc:  # noqa: BLE001 - a malformed update must not stop the poller
            log.warning("telegram: update %s is malformed (%s); skipped", update_id, exc)
            return None
        msg = update.message
        if msg is None:
            kinds = [k for k in raw if k != "update_id"]
            log.info("telegram: update %s skipped (%s, not a new message)", update_id, ",".join(kinds) or "empty")
            return None
        text = msg.text or msg.caption
        user = msg.from_user
        if not text or user is None or user.is_bot or msg.chat.type == "channel":
            log.info("telegram: update %s skipped (no text, no human sender, or a channel)", update_id)
            return None
        mentioned = bool(self._mention and self._mention.search(text))  # @username, also in "/rooms@bot"
        for entity in (msg.entities or msg.caption_entities or ()):
            if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == self._bot_id:
                mentioned = True
        replied = msg.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == self._bot_id:
            mentioned = True
        clean = self._mention.sub("", text) if self._mention else text
        return InboundMessage(
            platform=self.platform,
            account=self.account,
            chat_id=str(msg.chat.id),
            message_id=str(msg.message_id),
            text=re.sub(r"[ \t]{2,}", " ", clean).strip(),
            sender_id=str(user.id),
            sender_username=user.username or "",
            sender_name=user.full_name or user.username or str(user.id),
            chat_type="private" if msg.chat.type == "private" else "group",
            mentioned=mentioned,
        )

    async def _watchdog(self) -> None:
        """Restart polling when a getUpdates request hangs past its timeout (a silent dead connection)."""
        limit = self.config.poll_timeout + self.watchdog_grace
        while True:
            await asyncio.sleep(min(10.0, limit / 4))
            started = self._request_started
            if started is None or time.monotonic() - started < limit:
                continue
            log.warning("telegram: getUpdates stalled for %.0fs; restarting polling", time.monotonic() - started)
            self.restarts += 1
            self._state = "reconnecting"
            await _cancel(self._poll_task)
            self._request_started = None
            self._poll_task = asyncio.create_task(self._poll_forever(), name="telegram-poll")

    # --- sending --------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str:
        from telegram.error import BadRequest

        try:
            try:
                sent = await self._send_text(message, message.text, "HTML")
            except BadRequest as exc:
                if "can't parse entities" not in str(exc).lower():
                    raise
                log.warning("telegram: HTML refused for %s (%s); resending as plain text", message.key, exc)
                sent = await self._send_text(message, telegram_text(message.text), None)
        except Exception as exc:  # noqa: BLE001 - classified for the outbox just below
            raise _send_error(exc) from exc
        return str(sent.message_id)

    async def _send_text(self, message: OutboundMessage, text: str, parse_mode: str | None) -> Any:
        from telegram import LinkPreviewOptions, ReplyParameters

        reply = None
        if message.reply_to:
            reply = ReplyParameters(message_id=int(message.reply_to), allow_sending_without_reply=True)
        return await self._bot.send_message(
            chat_id=int(message.chat_id), text=text, parse_mode=parse_mode, reply_parameters=reply,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def typing(self, chat_id: str) -> None:
        try:
            await self._bot.send_chat_action(chat_id=int(chat_id), action="typing")
        except Exception as exc:  # noqa: BLE001 - a missing typing indicator is no reason to fail a turn
            log.debug("telegram: sendChatAction failed: %s", exc)


async def _cancel(task: asyncio.Task | None) -> None:
    """Cancel a task and wait until it ended. asyncio.wait never raises the task's CancelledError, so
    a cancellation of the caller itself still propagates (suppressing it would leave the caller running)."""
    if task is not None:
        task.cancel()
        await asyncio.wait([task])


def _send_error(exc: Exception) -> SendError:
    """Sort a failed send: wait and retry, retry with backoff, never resend (maybe delivered), or give up."""
    import httpx
    from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

    if isinstance(exc, RetryAfter):
        with warnings.catch_warnings():  # PTB warns that retry_after will become a timedelta
            warnings.simplefilter("ignore")
            wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
        return SendError(str(exc), retryable=True, retry_after=seconds)
    if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):  # PTB's BadRequest is a NetworkError
        cause = exc.__cause__
        if cause is None:  # Telegram answered with a 5xx: it did not take the message
            return SendError(str(exc), retryable=True)
        if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return SendError(f"{type(cause).__name__}: {exc}", retryable=True)  # the request never went out
        kind = "timed out" if isinstance(exc, TimedOut) else "connection lost"
        return SendError(f"{kind} after the request went out ({type(cause).__name__})", maybe_delivered=True)
    return SendError(f"{type(exc).__name__}: {exc}")  # Forbidden, BadRequest...: resending won't help
