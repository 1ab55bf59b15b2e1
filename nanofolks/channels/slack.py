"""Slack through slack-bolt in Socket Mode (async): no public URL, one WebSocket that Slack pushes events to.

One `AsyncWebClient` (base URL `apiBase`) serves the Web API calls and `apps.connections.open`, which
hands out the Socket Mode URL, so `apiBase` alone points the whole adapter at a test server.

- Durable ingress: the bolt app runs with `process_before_response=True`, so an envelope is acknowledged
  only after its listener returned, i.e. after `on_message` wrote the inbox row. If that write fails the
  listener raises, bolt sends no ack and Slack redelivers the envelope. Envelopes are handled
  concurrently (slack-sdk runs each in its own task), so a slow one does not hold up the others.
- A message that mentions the bot arrives twice, as `message` and `app_mention` with the same ts: both
  are handed over as one (channel, ts) and wait for the same `on_message` call.
- The message id is the ts, or `THREAD_TS/TS` for a reply inside a thread, so that the answer goes to
  the thread (Slack wants the parent's ts as `thread_ts`) even after a restart.
- Our own posts echo back as events; they and other bots' messages are skipped, as are edits,
  deletions and joins (message subtypes).
- Sends: no retries inside slack-sdk (the outbox retries, after `Retry-After` on a 429); a connection
  lost after the request went out counts as maybe delivered.
- Slack offers no typing indicator to Socket Mode bots: `typing()` does nothing.
- Reconnects are slack-sdk's: on a `disconnect` frame at once, after a silent drop within a few
  ping intervals."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
from collections import OrderedDict
from typing import Any

from nanofolks.channels.base import ChannelError, OnMessage, SendError
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.config.schema import SlackConfig

log = logging.getLogger("nanofolks.slack")

PING_INTERVAL = 5.0  # bolt's default of 10 s notices a dead socket only after ~40 s
LOOKUP_TIMEOUT = 2.0  # seconds a users.info may delay an ack; the name is only cosmetic
CONNECT_ATTEMPTS = 5
CONNECT_TIMEOUT = 60.0  # seconds start() waits for the first Socket Mode connection
RECENT = 2048  # (channel, ts) pairs remembered to merge `message` and `app_mention`
# Message subtypes that are a person writing; the rest are edits, deletions, joins, bot posts...
PERSON_SUBTYPES = {None, "thread_broadcast", "file_share", "me_message"}
# Slack errors after which part of the call may have happened ("it's possible some aspect succeeded").
MAYBE_DONE = {"fatal_error", "internal_error"}
_ESCAPED = re.compile(r"<([^<>]+)>")


class SlackChannel:
    platform = "slack"

    def __init__(self, config: SlackConfig, ping_interval: float = PING_INTERVAL):
        if not config.bot_token or not config.app_token:
            raise ChannelError("channels.slack.botToken (xoxb-...) and channels.slack.appToken (xapp-...) "
                               "are both needed")
        self.config = config
        self.ping_interval = ping_interval
        self._client: Any = None  # slack_sdk AsyncWebClient, imported lazily
        self._handler: Any = None  # bolt AsyncSocketModeHandler
        self._on_message: OnMessage | None = None
        self._state = "stopped"
        self._bot_user = ""
        self.username = ""
        self._names: dict[str, str] = {}  # user id -> display name
        self._recent: OrderedDict[tuple[str, str], asyncio.Task] = OrderedDict()

    # --- identity -------------------------------------------------------------------------------

    @property
    def account(self) -> str:
        return self._bot_user

    @property
    def state(self) -> str:
        if self._state != "running":
            return self._state
        session = getattr(getattr(self._handler, "client", None), "current_session", None)
        return "running" if session is not None and not session.closed else "reconnecting"

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
        from slack_bolt.async_app import AsyncApp
        from slack_sdk.web.async_client import AsyncWebClient

        self._state = "starting"
        self._on_message = on_message
        # retry_handlers=[]: slack-sdk would resend after a dropped connection (a possible duplicate)
        # and knows nothing of the outbox's schedule.
        self._client = AsyncWebClient(token=self.config.bot_token, base_url=self.config.api_base, retry_handlers=[])
        auth = await self._connect_step("auth.test", self._client.auth_test)
        self._bot_user = auth["user_id"]
        self.username = auth.get("user") or ""
        app = AsyncApp(client=self._client, process_before_response=True, logger=log.getChild("bolt"))
        app.event("message")(self._event)
        app.event("app_mention")(self._event)
        # slack-sdk's connect() retries every failure forever, a refused app token included: check it first.
        await self._connect_step("apps.connections.open",
                                 lambda: self._client.apps_connections_open(app_token=self.config.app_token))
        self._handler = AsyncSocketModeHandler(app, self.config.app_token, web_client=self._client,
                                               ping_interval=self.ping_interval)
        try:
            await asyncio.wait_for(self._handler.connect_async(), CONNECT_TIMEOUT)
        except TimeoutError:
            await self.stop()
            raise ChannelError(f"slack: no Socket Mode connection within {CONNECT_TIMEOUT:.0f}s") from None
        self._state = "running"
        log.info("slack: signed in as @%s (%s) in team %s", self.username, self._bot_user, auth.get("team_id"))

    async def _connect_step(self, what: str, call: Any) -> Any:
        """Retry network failures a few times; a refused token is final."""
        import aiohttp
        from slack_sdk.errors import SlackApiError

        attempt = 0
        while True:
            try:
                return await call()
            except SlackApiError as exc:
                error = exc.response.get("error", exc.response.status_code)
                if exc.response.status_code < 500 and exc.response.status_code != 429:
                    raise ChannelError(f"slack refused {what}: {error}") from exc
                failure: Exception = exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failure = exc
            attempt += 1
            if attempt == CONNECT_ATTEMPTS:
                raise ChannelError(f"slack API at {self.config.api_base} unreachable ({what}): {failure}")
            log.warning("slack: %s failed (%s); retrying", what, failure)
            await asyncio.sleep(2**attempt)

    async def stop(self) -> None:
        self._state = "stopped"
        if self._handler is not None:
            with contextlib.suppress(Exception):
                await self._handler.close_async()
        for task in self._recent.values():
            task.cancel()

    # --- receiving ------------------------------------------------------------------------------

    async def _event(self, event: dict) -> None:
        """A bolt listener: returns once the message is stored (bolt acks then), raises if it was not."""
        message = self._parse(event)
        if message is None:
            return
        message.sender_name = await self._name(message.sender_id)
        key = (message.chat_id, message.message_id)
        task = self._recent.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(self._on_message(message))  # type: ignore[misc]
            self._recent[key] = task
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        await asyncio.shield(task)  # the twin event waits for the same store; an error means no ack

    def _parse(self, event: dict) -> InboundMessage | None:
        kind, channel, ts = event.get("type"), event.get("channel"), event.get("ts")
        user, text = event.get("user"), event.get("text") or ""
        if event.get("subtype") not in PERSON_SUBTYPES or event.get("bot_id") or user == self._bot_user:
            return None  # an edit, a join, our own echo, another bot: nothing the crew answers
        if not all(isinstance(v, str) for v in (channel, ts, user, text)):
            log.warning("slack: malformed %s event skipped: %.200r", kind, event)
            return None
        if not text.strip():
            return None
        thread = event.get("thread_ts")
        # app_mention carries no channel_type (and never comes from a DM): the id's prefix tells.
        private = event.get("channel_type", "im" if channel.startswith("D") else "channel") == "im"
        mentioned = (kind == "app_mention" or f"<@{self._bot_user}" in text or self._open(channel)
                     or (thread is not None and event.get("parent_user_id") == self._bot_user))
        return InboundMessage(
            platform=self.platform,
            account=self.account,
            chat_id=channel,
            message_id=f"{thread}/{ts}" if thread and thread != ts else ts,
            text=self._plain(text),
            sender_id=user,
            chat_type="private" if private else "group",
            mentioned=mentioned,
        )

    def _open(self, channel: str) -> bool:
        """An open channel talks to the crew without a mention (the access policy lets anyone in it)."""
        return "*" in self.config.open_groups or channel in self.config.open_groups

    def _plain(self, text: str) -> str:
        """Slack's escaped text as a person wrote it, without our own mention."""

        def unescape(match: re.Match[str]) -> str:
            target, _, label = match[1].partition("|")
            if target == f"@{self._bot_user}":
                return ""
            if target[:1] in "@#":
                return f"{target[0]}{label or target[1:]}"
            if target.startswith("!"):  # <!here>, <!channel>
                return f"@{label or target[1:]}"
            return f"{label} ({target})" if label and label != target else target

        clean = html.unescape(_ESCAPED.sub(unescape, text))  # Slack escapes only &, < and >
        return re.sub(r"[ \t]{2,}", " ", clean).strip()

    async def _name(self, user: str) -> str:
        """The sender's display name, for the room history; the id when Slack cannot say quickly."""
        if user not in self._names:
            try:
                info = await asyncio.wait_for(self._client.users_info(user=user), LOOKUP_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a name is nice to have, the message is not
                log.debug("slack: users.info %s failed: %s", user, exc)
                return user
            profile = info["user"].get("profile") or {}
            self._names[user] = profile.get("display_name") or profile.get("real_name") or info["user"]["name"]
        return self._names[user]

    # --- sending --------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str:
        thread = message.reply_to.partition("/")[0] if message.reply_to else None
        try:
            sent = await self._client.chat_postMessage(
                channel=message.chat_id, text=message.text, thread_ts=thread,
                mrkdwn=True, unfurl_links=False, unfurl_media=False,
            )
        except Exception as exc:  # noqa: BLE001 - classified for the outbox just below
            raise _send_error(exc) from exc
        return str(sent["ts"])


def _send_error(exc: Exception) -> SendError:
    """Sort a failed send: wait and retry, retry with backoff, never resend (maybe delivered), or give up."""
    import aiohttp
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        status, error = exc.response.status_code, exc.response.get("error", "")
        if status == 429 or error == "ratelimited":
            headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
            retry_after = headers.get("retry-after")
            wait = float(retry_after) if str(retry_after or "").strip().isdigit() else None
            return SendError(f"slack rate limit ({error})", retryable=True, retry_after=wait)
        if error in MAYBE_DONE:
            return SendError(f"slack failed mid-way ({status} {error})", maybe_delivered=True)
        if status >= 500:
            return SendError(f"slack unavailable ({status} {error})", retryable=True)
        return SendError(f"slack refused the message: {error or status}")  # channel_not_found, not_in_channel...
    if isinstance(exc, aiohttp.ClientConnectorError):
        return SendError(f"cannot reach slack: {exc}", retryable=True)  # the request never went out
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return SendError(f"connection lost after the request went out ({type(exc).__name__})",
                         maybe_delivered=True)
    return SendError(f"{type(exc).__name__}: {exc}")
