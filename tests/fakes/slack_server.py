"""Loopback Slack for tests: the Web API and the Socket Mode WebSocket, driven by the real slack-sdk / slack-bolt.

    with FakeSlack() as slack_fake:
        client = AsyncWebClient(token=slack_fake.bot_token, base_url=slack_fake.api_base)
        app = AsyncApp(client=client)          # bolt's handler asks the same client for apps.connections.open
        handler = AsyncSocketModeHandler(app, slack_fake.app_token)
        await handler.connect_async()
        ts = slack_fake.push_message("D1", "hi", user="U1")
        await slack_fake.wait_for_posted_async(1)

Web API: ``POST|GET {api_base}{method}`` with form, JSON or query parameters and ``Authorization: Bearer``
(or a ``token`` parameter); errors are HTTP 200 ``{"ok": false, "error": ...}`` except scripted failures
(429 ``ratelimited`` with an integer ``Retry-After``, which slack-sdk's rate-limit retry handler reads).
Socket Mode: ``apps.connections.open`` (app token only) hands out ``ws://127.0.0.1:PORT/socket?ticket=...``;
on connect the server sends ``hello``, then ``events_api`` envelopes, each of which the client must ack
with ``{"envelope_id": ...}``; unacked envelopes are redelivered (``retry_attempt`` + 1,
``retry_reason: "timeout"``) after ``redeliver_after`` seconds, at most ``max_retries`` times. Envelopes
pushed while no socket is open wait for the next one. The bot's own posts come back as ``message``
events with its ``bot_id``, as on real Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.aio_server import LoopbackServer, ScriptedFailure

API_PREFIX = "/api/"
MAX_TEXT = 40000
REDELIVERY_TICK = 0.05


@dataclass(eq=False)
class _Envelope:
    body: dict
    attempts: int = 0  # retries so far (retry_attempt of the next delivery)
    sent_at: float | None = None  # monotonic time of the last delivery; None: not delivered yet


class SlackApiCallError(Exception):
    """A Web API call answered ``{"ok": false, "error": code}``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class FakeSlack(LoopbackServer):
    """Slack Web API + Socket Mode on loopback. All public methods are thread-safe."""

    def __init__(self, bot_token: str = "xoxb-test", app_token: str = "xapp-test", bot_user_id: str = "UBOT",
                 team_id: str = "T1", port: int = 0, *, bot_id: str = "BBOT", app_id: str = "A1",
                 redeliver_after: float = 10.0, max_retries: int = 3) -> None:
        super().__init__(port)
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.redeliver_after = redeliver_after
        self.max_retries = max_retries
        self.posted: list[dict] = []  # accepted chat.postMessage calls
        self.updated: list[dict] = []  # accepted chat.update calls
        self.acks: list[str] = []  # envelope ids in the order acks arrived
        self.delivered: list[dict] = []  # every envelope as sent, redeliveries included
        self.expired: list[dict] = []  # envelopes never acked after max_retries
        self.connections_opened = 0  # apps.connections.open calls answered ok
        self.sockets_accepted = 0
        self._tickets: set[str] = set()
        self._channels: dict[str, dict] = {}
        self._users: dict[str, dict] = {bot_user_id: self._user_payload(bot_user_id, "crewbot", is_bot=True)}
        self._messages: dict[tuple[str, str], dict] = {}  # (channel, ts) -> message
        self._pending: dict[str, _Envelope] = {}  # envelope id -> unacked envelope
        self._sockets_in_order: list[tuple[web.WebSocketResponse, web.Request]] = []
        self._last_ts = 0.0

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    # ----------------------------------------------------------------- test controls

    def add_channel(self, channel_id: str, name: str, *, is_im: bool = False, user: str | None = None) -> None:
        """Register a channel (or, with ``is_im``, the DM with ``user``) the bot is a member of."""
        self.call(self._add_channel, channel_id, name, is_im, user)

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> None:
        self.call(self._users.__setitem__, user_id, self._user_payload(user_id, name, is_bot=is_bot))

    def push_event(self, event: dict) -> str:
        """Wrap ``event`` in an ``events_api`` envelope and deliver it; returns the envelope id."""
        return self.call(self._push_event, copy.deepcopy(event))

    def push_message(self, channel: str, text: str, *, user: str, channel_type: str = "im",
                     thread_ts: str | None = None, mention: bool = False, bot_id: str | None = None,
                     subtype: str | None = None) -> str:
        """``user`` posts ``text`` in ``channel``; with ``mention`` the text starts with ``<@BOT>`` and an
        ``app_mention`` envelope for the same ts follows the ``message`` one (as Slack does). Returns the ts."""
        if channel_type not in ("im", "channel", "group", "mpim"):
            raise ValueError(f"unknown channel_type {channel_type!r}")
        return self.call(self._push_message, channel, text, user, channel_type, thread_ts, mention, bot_id,
                         subtype)

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every open socket to reconnect (``{"type": "disconnect"}``), as Slack does before rotating hosts."""
        self.call(self._send_all, {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}})

    def drop_socket(self) -> None:
        """Cut every Socket Mode connection without a close frame, like a network drop."""
        self.call(self._drop_sockets)

    def fail_next(self, method: str, status: int = 429, retry_after: float = 1, count: int = 1) -> None:
        """Fail the next ``count`` calls of a Web API method ("chat.postMessage", "chat.*")."""
        self._script_failure(method, status, retry_after, count)

    def wait_for_posted(self, n: int, timeout: float = 30.0) -> list[dict]:
        self.wait_until(lambda: len(self.posted) >= n, timeout, f"{n} posted message(s), have {len(self.posted)}")
        return self.posted[:n]

    async def wait_for_posted_async(self, n: int, timeout: float = 30.0) -> list[dict]:
        await self.wait_until_async(lambda: len(self.posted) >= n, timeout, f"{n} posted message(s)")
        return self.posted[:n]

    @property
    def open_sockets(self) -> int:
        return sum(1 for ws, _ in list(self._sockets_in_order) if not ws.closed)

    @property
    def unacked(self) -> int:
        return len(self._pending)

    # ----------------------------------------------------------------- state changes (server loop)

    def _new_ts(self) -> str:
        self._last_ts = max(round(time.time(), 6), round(self._last_ts + 0.000001, 6))
        return f"{self._last_ts:.6f}"

    @staticmethod
    def _user_payload(user_id: str, name: str, *, is_bot: bool = False) -> dict:
        return {"id": user_id, "name": name, "real_name": name, "is_bot": is_bot, "deleted": False,
                "profile": {"real_name": name, "display_name": name}}

    def _add_channel(self, channel_id: str, name: str, is_im: bool, user: str | None) -> dict:
        channel = {"id": channel_id, "name": name, "is_channel": not is_im, "is_im": is_im, "is_private": is_im,
                   "is_member": True, "created": int(time.time())}
        if is_im:
            channel["user"] = user
        self._channels[channel_id] = channel
        return channel

    async def _push_event(self, event: dict) -> str:
        envelope_id = str(uuid.uuid4())
        body = {
            "envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": False,
            "retry_attempt": 0, "retry_reason": "",
            "payload": {
                "token": "verification-token", "team_id": self.team_id, "api_app_id": self.app_id,
                "event": event, "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
                "event_time": int(time.time()), "is_ext_shared_channel": False,
                "authorizations": [{"enterprise_id": None, "team_id": self.team_id, "user_id": self.bot_user_id,
                                    "is_bot": True, "is_enterprise_install": False}],
            },
        }
        envelope = _Envelope(body)
        self._pending[envelope_id] = envelope
        await self._deliver(envelope)
        return envelope_id

    async def _push_message(self, channel: str, text: str, user: str, channel_type: str, thread_ts: str | None,
                            mention: bool, bot_id: str | None, subtype: str | None) -> str:
        if channel not in self._channels:
            self._add_channel(channel, channel.lower(), channel_type == "im", user)
        self._users.setdefault(user, self._user_payload(user, user.lower(), is_bot=bot_id is not None))
        if mention and f"<@{self.bot_user_id}>" not in text:
            text = f"<@{self.bot_user_id}> {text}"
        ts = self._new_ts()
        event: dict[str, Any] = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
                                 "event_ts": ts, "channel_type": channel_type, "team": self.team_id,
                                 "client_msg_id": str(uuid.uuid4())}
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        if bot_id is not None:
            event["bot_id"] = bot_id
        if subtype is not None:
            event["subtype"] = subtype
        self._messages[(channel, ts)] = event
        await self._push_event(event)
        if mention:
            mention_event = {key: event[key] for key in ("user", "text", "ts", "channel", "event_ts", "team",
                                                         "client_msg_id", "thread_ts") if key in event}
            await self._push_event({"type": "app_mention", **mention_event})
        return ts

    async def _deliver(self, envelope: _Envelope) -> None:
        open_sockets = [ws for ws, _ in self._sockets_in_order if not ws.closed]
        if not open_sockets:
            envelope.sent_at = None
            return
        envelope.body["retry_attempt"] = envelope.attempts
        envelope.body["retry_reason"] = "timeout" if envelope.attempts else ""
        envelope.sent_at = time.monotonic()
        self.delivered.append(copy.deepcopy(envelope.body))
        with contextlib.suppress(ConnectionError):  # lost: redelivered after redeliver_after
            await open_sockets[-1].send_str(json.dumps(envelope.body))

    async def _redeliver_forever(self) -> None:
        while True:
            await self._redeliver_due()
            await asyncio.sleep(REDELIVERY_TICK)

    async def _redeliver_due(self) -> None:
        now = time.monotonic()
        for envelope_id, envelope in list(self._pending.items()):
            if envelope_id not in self._pending:
                continue  # acked meanwhile
            if envelope.sent_at is None:
                await self._deliver(envelope)
            elif now - envelope.sent_at >= self.redeliver_after:
                if envelope.attempts >= self.max_retries:
                    self.expired.append(self._pending.pop(envelope_id).body)
                    continue
                envelope.attempts += 1
                await self._deliver(envelope)

    async def _send_all(self, payload: dict) -> None:
        for ws, _ in list(self._sockets_in_order):
            if not ws.closed:
                await ws.send_str(json.dumps(payload))

    async def _drop_sockets(self) -> None:
        for _, request in list(self._sockets_in_order):
            self._abort(request)

    async def _on_started(self) -> None:
        self._spawn(self._redeliver_forever())

    # ----------------------------------------------------------------- Socket Mode

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        ws = await self._accept_socket(request)
        self.sockets_accepted += 1
        self._sockets_in_order.append((ws, request))
        try:
            await ws.send_str(json.dumps({
                "type": "hello", "num_connections": self.open_sockets,
                "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }))
            for envelope in list(self._pending.values()):
                if envelope.sent_at is None:
                    await self._deliver(envelope)
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_client_frame(msg.data)
        finally:
            self._forget_socket(ws)
            self._sockets_in_order = [(w, r) for w, r in self._sockets_in_order if w is not ws]
        return ws

    def _on_client_frame(self, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            return  # Slack ignores frames it can't parse
        envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
        if envelope_id:
            self.acks.append(envelope_id)
            self._pending.pop(envelope_id, None)

    # ----------------------------------------------------------------- Web API

    def _routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/socket", self._socket),
            web.route("*", f"{API_PREFIX}{{method}}", self._api),
        ]

    def _api_path(self, request: web.Request) -> str | None:
        return request.path.removeprefix(API_PREFIX) if request.path.startswith(API_PREFIX) else None

    def _failure_response(self, failure: ScriptedFailure) -> web.Response:
        if failure.status == 429:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": failure.retry_after_header})
        return web.json_response({"ok": False, "error": "fatal_error"}, status=failure.status)

    def _handlers(self) -> dict[str, tuple[str, Callable[[dict], Awaitable[dict]]]]:
        """Web API method -> (token kind it needs, handler)."""
        return {
            "auth.test": ("bot", self._auth_test),
            "apps.connections.open": ("app", self._connections_open),
            "chat.postMessage": ("bot", self._post_message),
            "chat.update": ("bot", self._update_message),
            "conversations.info": ("bot", self._conversation_info),
            "users.info": ("bot", self._user_info),
        }

    async def _api(self, request: web.Request) -> web.Response:
        entry = self._handlers().get(request.match_info["method"])
        if entry is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        kind, handler = entry
        params = await self._params(request)
        if params is None:
            return web.json_response({"ok": False, "error": "invalid_json"})
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else params.pop("token", "")
        error = self._token_error(token, kind)
        if error is not None:
            return web.json_response({"ok": False, "error": error})
        try:
            return web.json_response({"ok": True, **await handler(params)})
        except SlackApiCallError as exc:
            return web.json_response({"ok": False, "error": exc.code})

    @staticmethod
    async def _params(request: web.Request) -> dict | None:
        """Query, form and JSON parameters merged (slack-sdk sends each method one of these ways)."""
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    return None
                if not isinstance(body, dict):
                    return None
                params.update(body)
            else:
                params.update(await request.post())
        return params

    def _token_error(self, token: str, kind: str) -> str | None:
        if not token:
            return "not_authed"
        expected = self.bot_token if kind == "bot" else self.app_token
        if token == expected:
            return None
        return "not_allowed_token_type" if token in (self.bot_token, self.app_token) else "invalid_auth"

    async def _auth_test(self, params: dict) -> dict:
        return {"url": "https://fake.slack.com/", "team": "Fake Team", "user": self._users[self.bot_user_id]["name"],
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    async def _connections_open(self, params: dict) -> dict:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        self.connections_opened += 1
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}&app_id={self.app_id}"}

    def _channel(self, params: dict) -> dict:
        channel = self._channels.get(str(params.get("channel") or ""))
        if channel is None:
            raise SlackApiCallError("channel_not_found")
        return channel

    @staticmethod
    def _text(params: dict) -> str:
        text = str(params.get("text") or "")
        if not text.strip() and not params.get("blocks") and not params.get("attachments"):
            raise SlackApiCallError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackApiCallError("msg_too_long")
        return text

    async def _post_message(self, params: dict) -> dict:
        channel = self._channel(params)
        text = self._text(params)
        ts = self._new_ts()
        thread_ts = params.get("thread_ts") or None
        message: dict[str, Any] = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id,
                                   "app_id": self.app_id, "text": text, "ts": ts, "team": self.team_id}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._messages[(channel["id"], ts)] = message
        self.posted.append({"channel": channel["id"], "text": text, "thread_ts": thread_ts, "ts": ts,
                            "mrkdwn": params.get("mrkdwn"), "blocks": params.get("blocks")})
        # Slack echoes the bot's own message to its event subscription.
        channel_type = "im" if channel["is_im"] else "channel"
        await self._push_event({**message, "channel": channel["id"], "event_ts": ts, "channel_type": channel_type})
        return {"channel": channel["id"], "ts": ts, "message": message}

    async def _update_message(self, params: dict) -> dict:
        channel = self._channel(params)
        message = self._messages.get((channel["id"], str(params.get("ts") or "")))
        if message is None:
            raise SlackApiCallError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise SlackApiCallError("cant_update_message")
        message["text"] = self._text(params)
        self.updated.append({"channel": channel["id"], "ts": message["ts"], "text": message["text"]})
        return {"channel": channel["id"], "ts": message["ts"], "text": message["text"]}

    async def _conversation_info(self, params: dict) -> dict:
        return {"channel": self._channel(params)}

    async def _user_info(self, params: dict) -> dict:
        user = self._users.get(str(params.get("user") or ""))
        if user is None:
            raise SlackApiCallError("user_not_found")
        return {"user": {**user, "team_id": self.team_id}}
