"""Loopback Discord for tests: REST API v10 and the gateway WebSocket, driven by the real discord.py.

    with FakeDiscord() as discord_fake:
        discord_fake.add_guild("1", "crew hq", channels=[{"id": "10", "name": "general"}])
        # point discord.py at it (both are class attributes discord.py reads at request/connect time):
        discord.http.Route.BASE = discord_fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(discord_fake.gateway_url)
        ...
        discord_fake.push_message("10", "hello", author_id="7", author_name="ann", mentions_bot=True)
        await discord_fake.wait_for_sent_async(1)

Protocol as discord.py 2.x speaks it: ``Authorization: Bot TOKEN``; 429s carry a JSON body
``{"message", "retry_after", "global"}``, ``X-RateLimit-*`` headers and ``Via`` (discord.py treats a 429
without ``Via`` as a Cloudflare ban and raises instead of retrying). The gateway honours ``compress=zlib-stream``
(one zlib stream per connection, every message ending in a Z_SYNC_FLUSH), otherwise sends JSON text frames.
Sessions keep their dispatched events so RESUME replays what a dropped connection missed; intents gate
what a session receives (no MESSAGE_CONTENT intent: guild messages arrive with empty content unless they
mention the bot, as on real Discord). The bot's own messages are dispatched back to it, as Discord does.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.aio_server import LoopbackServer, ScriptedFailure

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000
MAX_CONTENT = 2000
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
CHANNEL_TEXT, CHANNEL_DM, CHANNEL_PUBLIC_THREAD = 0, 1, 11
MESSAGE_DEFAULT, MESSAGE_REPLY = 0, 19

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 9, 10, 11
CLOSE_UNKNOWN_OPCODE, CLOSE_DECODE_ERROR, CLOSE_NOT_AUTHENTICATED = 4001, 4002, 4003
CLOSE_AUTH_FAILED, CLOSE_ALREADY_AUTHENTICATED, CLOSE_SESSION_TIMED_OUT = 4004, 4005, 4009


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _json(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    """Exactly ``application/json``, no charset: discord.py parses a body as JSON only then."""
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={**(headers or {}), "Content-Type": "application/json"})


def _error(status: int, code: int, message: str, errors: dict | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _json(body, status=status)


def _field_error(name: str, code: str, message: str) -> dict:
    return {name: {"_errors": [{"code": code, "message": message}]}}


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    compressor: Any = None  # zlib compressobj when the client asked for zlib-stream
    session: _Session | None = None

    async def send(self, payload: dict) -> None:
        data = json.dumps(payload)
        if self.compressor is None:
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(self.compressor.compress(data.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH))


@dataclass(eq=False)
class _Session:
    session_id: str
    intents: int
    seq: int = 0
    events: list[dict] = field(default_factory=list)  # every dispatch, kept for RESUME replay
    connection: _Connection | None = None


class FakeDiscord(LoopbackServer):
    """Discord REST + gateway on loopback. All public methods are thread-safe."""

    def __init__(self, token: str = "discord-test-token", bot_id: str = "100", bot_name: str = "crewbot",
                 port: int = 0, heartbeat_interval_ms: int = 41250) -> None:
        super().__init__(port)
        self.token = token
        self.bot_id = str(bot_id)
        self.bot_name = bot_name
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.bot_user = self._user(self.bot_id, bot_name, bot=True)
        self.sent: list[dict] = []  # accepted POST /channels/{id}/messages
        self.typing_calls: list[str] = []  # channel ids
        self.identify_count = 0
        self.resume_count = 0  # successful RESUMEs
        self.invalid_session_count = 0  # RESUMEs refused with INVALID_SESSION
        self.heartbeat_count = 0
        self.identify_payloads: list[dict] = []
        self._guilds: dict[str, dict] = {}
        self._channels: dict[str, dict] = {}
        self._users: dict[str, dict] = {self.bot_id: self.bot_user}
        self._messages: dict[str, dict] = {}
        self._commands: list[dict] = []
        self._sessions: dict[str, _Session] = {}
        self._connections: set[_Connection] = set()
        self._last_snowflake = 0

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ----------------------------------------------------------------- test controls

    def add_guild(self, guild_id: str, name: str, channels: list[dict] | None = None) -> None:
        """Register a guild the bot is in; live sessions get GUILD_CREATE (as when a bot joins one)."""
        self.call(self._add_guild, str(guild_id), name, channels or [])

    def add_thread(self, guild_id: str, parent_id: str, name: str) -> str:
        """Open a public thread under ``parent_id``; live sessions get THREAD_CREATE. Returns the thread id."""
        return self.call(self._add_thread, str(guild_id), str(parent_id), name)

    def push_message(self, channel_id: str, content: str, *, author_id: str, author_name: str,
                     guild_id: str | None = None, is_bot: bool = False, mentions_bot: bool = False,
                     reply_to_message_id: str | None = None) -> str:
        """A user posts in ``channel_id`` (a guild channel or thread, or else a DM channel created on first use).

        Dispatches MESSAGE_CREATE to every session; returns the new message id.
        """
        return self.call(self._push_message, str(channel_id), content, str(author_id), author_name,
                         None if guild_id is None else str(guild_id), is_bot, mentions_bot,
                         None if reply_to_message_id is None else str(reply_to_message_id))

    def fail_next(self, route_or_method: str, status: int = 429, retry_after: float = 0.5, count: int = 1,
                  *, is_global: bool = False) -> None:
        """Fail the next ``count`` matching REST calls: "POST", "/channels/*/typing", "POST /channels/*/messages"."""
        self._script_failure(route_or_method, status, retry_after, count, is_global)

    def drop_gateway(self, *, resumable: bool = True) -> None:
        """Cut every gateway connection without a close frame. ``resumable=False`` also forgets the sessions,
        so the client's RESUME gets INVALID_SESSION and it has to IDENTIFY again."""
        self.call(self._drop_gateway, resumable)

    def wait_for_sent(self, n: int, timeout: float = 30.0) -> list[dict]:
        self.wait_until(lambda: len(self.sent) >= n, timeout, f"{n} sent message(s), have {len(self.sent)}")
        return self.sent[:n]

    async def wait_for_sent_async(self, n: int, timeout: float = 30.0) -> list[dict]:
        await self.wait_until_async(lambda: len(self.sent) >= n, timeout, f"{n} sent message(s)")
        return self.sent[:n]

    @property
    def connected_sessions(self) -> int:
        """Gateway connections that completed IDENTIFY or RESUME and are still open."""
        return sum(1 for s in list(self._sessions.values()) if s.connection is not None)

    # ----------------------------------------------------------------- payload builders

    def _snowflake(self) -> str:
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_snowflake = max(now, self._last_snowflake + 1)
        return str(self._last_snowflake)

    @staticmethod
    def _user(user_id: str, name: str, *, bot: bool = False) -> dict:
        return {"id": user_id, "username": name, "discriminator": "0", "global_name": name, "avatar": None,
                "bot": bot, "system": False, "public_flags": 0, "flags": 0}

    def _member(self, user: dict | None = None) -> dict:
        member = {"roles": [], "joined_at": _now_iso(), "deaf": False, "mute": False, "flags": 0, "nick": None}
        if user is not None:
            member["user"] = user
        return member

    def _guild_payload(self, guild: dict) -> dict:
        channels = [c for c in self._channels.values() if c.get("guild_id") == guild["id"]]
        return {
            "id": guild["id"], "name": guild["name"], "icon": None, "owner_id": self.bot_id,
            "roles": [{"id": guild["id"], "name": "@everyone", "permissions": "1071698660929", "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "emojis": [], "stickers": [], "features": [], "members": [self._member(self.bot_user)],
            "member_count": 1, "large": False, "unavailable": False, "joined_at": _now_iso(),
            "channels": [c for c in channels if c["type"] != CHANNEL_PUBLIC_THREAD],
            "threads": [c for c in channels if c["type"] == CHANNEL_PUBLIC_THREAD],
            "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [], "premium_tier": 0, "preferred_locale": "en-US", "nsfw_level": 0,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "mfa_level": 0, "system_channel_flags": 0,
        }

    def _ready_payload(self, session: _Session) -> dict:
        return {
            "v": 10, "user": {**self.bot_user, "verified": True, "mfa_enabled": False},
            "guilds": [{"id": gid, "unavailable": True} for gid in self._guilds],
            "session_id": session.session_id, "resume_gateway_url": self.gateway_url,
            "application": {"id": self.bot_id, "flags": 0}, "private_channels": [], "relationships": [],
        }

    def _application_payload(self) -> dict:
        return {"id": self.bot_id, "name": self.bot_name, "description": "", "icon": None, "bot_public": True,
                "bot_require_code_grant": False, "owner": self._user("1", "owner"), "verify_key": "0" * 64,
                "flags": 0, "interactions_endpoint_url": None, "bot": self.bot_user}

    # ----------------------------------------------------------------- state changes (server loop)

    async def _add_guild(self, guild_id: str, name: str, channels: list[dict]) -> None:
        guild = {"id": guild_id, "name": name}
        self._guilds[guild_id] = guild
        for position, spec in enumerate(channels):
            channel_id = str(spec["id"])
            self._channels[channel_id] = {
                "id": channel_id, "type": int(spec.get("type", CHANNEL_TEXT)), "name": spec["name"],
                "guild_id": guild_id, "position": position, "parent_id": None, "permission_overwrites": [],
                "nsfw": False, "topic": None, "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
            }
        await self._dispatch_all("GUILD_CREATE", self._guild_payload(guild), INTENT_GUILDS)

    async def _add_thread(self, guild_id: str, parent_id: str, name: str) -> str:
        parent = self._channels.get(parent_id)
        if parent is None or parent.get("guild_id") != guild_id:
            raise ValueError(f"unknown channel {parent_id} in guild {guild_id}")
        thread_id = self._snowflake()
        self._channels[thread_id] = {
            "id": thread_id, "type": CHANNEL_PUBLIC_THREAD, "name": name, "guild_id": guild_id,
            "parent_id": parent_id, "owner_id": self.bot_id, "message_count": 0, "member_count": 1,
            "rate_limit_per_user": 0, "flags": 0, "last_message_id": None,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": _now_iso(),
                                "locked": False},
        }
        await self._dispatch_all("THREAD_CREATE", {**self._channels[thread_id], "newly_created": True},
                                 INTENT_GUILDS)
        return thread_id

    def _dm_channel(self, channel_id: str, recipient: dict) -> dict:
        channel = {"id": channel_id, "type": CHANNEL_DM, "last_message_id": None, "recipients": [recipient],
                   "flags": 0}
        self._channels[channel_id] = channel
        return channel

    async def _push_message(self, channel_id: str, content: str, author_id: str, author_name: str,
                            guild_id: str | None, is_bot: bool, mentions_bot: bool,
                            reply_to: str | None) -> str:
        author = self._users.setdefault(author_id, self._user(author_id, author_name, bot=is_bot))
        channel = self._channels.get(channel_id)
        if channel is None:
            if guild_id is not None:
                raise ValueError(f"unknown channel {channel_id} in guild {guild_id}: add_guild it first")
            channel = self._dm_channel(channel_id, author)
        elif guild_id is not None and channel.get("guild_id") != guild_id:
            raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
        mentions = []
        if mentions_bot:
            mention = f"<@{self.bot_id}>"
            content = content if mention in content else f"{mention} {content}"
            mentions.append(self.bot_user)
        message = self._message(channel, author, content, mentions, reply_to)
        await self._dispatch_message(message)
        return message["id"]

    def _message(self, channel: dict, author: dict, content: str, mentions: list[dict],
                 reply_to: str | None) -> dict:
        message = {
            "id": self._snowflake(), "channel_id": channel["id"], "author": author, "content": content,
            "timestamp": _now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": mentions, "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
            "type": MESSAGE_DEFAULT, "flags": 0, "components": [],
        }
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
            message["member"] = self._member()
        if reply_to is not None:
            referenced = self._messages.get(reply_to)
            if referenced is None:
                raise ValueError(f"unknown message {reply_to}")
            message["type"] = MESSAGE_REPLY
            message["message_reference"] = {"type": 0, "message_id": reply_to, "channel_id": referenced["channel_id"],
                                            "guild_id": referenced.get("guild_id")}
            message["referenced_message"] = referenced
        self._messages[message["id"]] = message
        channel["last_message_id"] = message["id"]
        return message

    async def _dispatch_message(self, message: dict) -> None:
        for session in list(self._sessions.values()):
            visible = self._visible_to(session, message)
            if visible is not None:
                await self._dispatch(session, "MESSAGE_CREATE", visible)

    def _visible_to(self, session: _Session, message: dict) -> dict | None:
        """The message as this session's intents let it see it (None: not delivered at all)."""
        in_guild = "guild_id" in message
        if not session.intents & (INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES):
            return None
        readable = (session.intents & INTENT_MESSAGE_CONTENT or not in_guild
                    or message["author"]["id"] == self.bot_id
                    or any(m["id"] == self.bot_id for m in message["mentions"]))
        return message if readable else {**message, "content": "", "embeds": [], "attachments": []}

    async def _drop_gateway(self, resumable: bool) -> None:
        for connection in list(self._connections):
            self._abort(connection.request)
        if not resumable:
            self._sessions.clear()

    # ----------------------------------------------------------------- gateway

    async def _dispatch(self, session: _Session, event: str, data: dict) -> None:
        session.seq += 1
        payload = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if session.connection is not None:
            await self._send(session.connection, payload)

    async def _dispatch_all(self, event: str, data: dict, intent: int) -> None:
        for session in list(self._sessions.values()):
            if session.intents & intent:
                await self._dispatch(session, event, data)

    async def _send(self, connection: _Connection, payload: dict) -> None:
        with contextlib.suppress(ConnectionError):  # a dropped connection: the session keeps it for RESUME
            await connection.send(payload)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._accept_socket(request, max_msg_size=0)
        compressor = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        connection = _Connection(ws, request, compressor)
        self._connections.add(connection)
        timeout = self.heartbeat_interval_ms / 1000 * 1.5
        try:
            await self._send(connection, {"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                                          "s": None, "t": None})
            while not ws.closed:
                try:
                    msg = await ws.receive(timeout=timeout)
                except TimeoutError:
                    await ws.close(code=CLOSE_SESSION_TIMED_OUT, message=b"Session timed out.")
                    break
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        await ws.close(code=CLOSE_DECODE_ERROR, message=b"Error while decoding payload.")
                    break
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=CLOSE_DECODE_ERROR, message=b"Error while decoding payload.")
                    break
                await self._on_gateway_payload(connection, payload)
        finally:
            self._connections.discard(connection)
            self._forget_socket(ws)
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
        return ws

    async def _on_gateway_payload(self, connection: _Connection, payload: dict) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeat_count += 1
            await self._send(connection, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(connection, data or {})
        elif op == OP_RESUME:
            await self._resume(connection, data or {})
        elif op in (3, 4, 8):  # presence, voice state, request guild members: accepted, not modelled
            if connection.session is None:
                await connection.ws.close(code=CLOSE_NOT_AUTHENTICATED, message=b"Not authenticated.")
        else:
            await connection.ws.close(code=CLOSE_UNKNOWN_OPCODE, message=b"Unknown opcode.")

    async def _identify(self, connection: _Connection, data: dict) -> None:
        if connection.session is not None:
            await connection.ws.close(code=CLOSE_ALREADY_AUTHENTICATED, message=b"Already authenticated.")
            return
        if data.get("token") != self.token:
            await connection.ws.close(code=CLOSE_AUTH_FAILED, message=b"Authentication failed.")
            return
        self.identify_count += 1
        self.identify_payloads.append(data)
        session = _Session(uuid.uuid4().hex, int(data.get("intents", 0)))
        self._sessions[session.session_id] = session
        connection.session = session
        session.connection = connection
        await self._dispatch(session, "READY", self._ready_payload(session))
        if session.intents & INTENT_GUILDS:
            for guild in self._guilds.values():
                await self._dispatch(session, "GUILD_CREATE", self._guild_payload(guild))

    async def _resume(self, connection: _Connection, data: dict) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.token or connection.session is not None:
            self.invalid_session_count += 1
            await self._send(connection, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        if session.connection is not None:  # a session lives on one connection at a time
            self._abort(session.connection.request)
        index = int(data.get("seq") or 0)  # events[i] has seq i + 1
        while index < len(session.events):  # also picks up events dispatched while replaying
            await self._send(connection, session.events[index])
            index += 1
        connection.session = session
        session.connection = connection
        self.resume_count += 1
        await self._dispatch(session, "RESUMED", {})

    # ----------------------------------------------------------------- REST

    def _routes(self) -> list[web.AbstractRouteDef]:
        api = API_PREFIX
        return [
            web.get("/gateway", self._gateway),
            web.get(f"{api}/gateway", self._get_gateway),
            web.get(f"{api}/gateway/bot", self._get_gateway_bot),
            web.get(f"{api}/users/@me", self._get_me),
            web.get(f"{api}/users/{{user_id}}", self._get_user),
            web.get(f"{api}/oauth2/applications/@me", self._get_application),
            web.get(f"{api}/channels/{{channel_id}}", self._get_channel),
            web.post(f"{api}/channels/{{channel_id}}/messages", self._post_message),
            web.post(f"{api}/channels/{{channel_id}}/typing", self._post_typing),
            web.post(f"{api}/users/@me/channels", self._create_dm),
            web.get(f"{api}/applications/{{app_id}}/commands", self._get_commands),
            web.put(f"{api}/applications/{{app_id}}/commands", self._put_commands),
        ]

    def _api_path(self, request: web.Request) -> str | None:
        return request.path.removeprefix(API_PREFIX) if request.path.startswith(API_PREFIX) else None

    def _failure_response(self, failure: ScriptedFailure) -> web.Response:
        if failure.status != 429:
            return _error(failure.status, 0, f"{failure.status}: scripted failure")
        headers = {
            "Retry-After": failure.retry_after_header, "Via": "1.1 google", "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{time.time() + failure.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{failure.retry_after:.3f}", "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "global" if failure.is_global else "user",
        }
        if failure.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": failure.retry_after,
                "global": failure.is_global, "code": 0}
        return _json(body, status=429, headers=headers)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = self._api_path(request)
        if path not in (None, "/gateway") and request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, 0, "404: Not Found")

    def _middlewares(self) -> list:
        return [self._auth]

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}})

    async def _get_me(self, request: web.Request) -> web.Response:
        return _json({**self.bot_user, "verified": True, "mfa_enabled": False})

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self._users.get(request.match_info["user_id"])
        return _json(user) if user else _error(404, 10013, "Unknown User")

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json(self._application_payload())

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self._channels.get(request.match_info["channel_id"])
        return _json(channel) if channel else _error(404, 10003, "Unknown Channel")

    async def _post_message(self, request: web.Request) -> web.Response:
        channel = self._channels.get(request.match_info["channel_id"])
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        body = await self._message_body(request)
        if body is None:
            return _error(400, 50109, "The request body contains invalid JSON.")
        content = body.get("content") or ""
        if len(content) > MAX_CONTENT:
            return _error(400, 50035, "Invalid Form Body", _field_error(
                "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."))
        if not content.strip() and not body.get("embeds") and not body.get("sticker_ids"):
            return _error(400, 50006, "Cannot send an empty message")
        reference = body.get("message_reference")
        reply_to = str(reference["message_id"]) if reference and reference.get("message_id") else None
        if reply_to is not None and reply_to not in self._messages:
            return _error(400, 50035, "Invalid Form Body", _field_error(
                "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"))
        message = self._message(channel, self.bot_user, content, [], reply_to)
        message["embeds"] = body.get("embeds") or []
        self.sent.append({"id": message["id"], "channel_id": channel["id"], "content": content,
                          "message_reference": message.get("message_reference"), "embeds": message["embeds"]})
        await self._dispatch_message(message)
        return _json(message)

    @staticmethod
    async def _message_body(request: web.Request) -> dict | None:
        """JSON body, or the ``payload_json`` part discord.py sends with files (multipart)."""
        try:
            if request.content_type.startswith("multipart/"):
                form = await request.post()
                return json.loads(str(form.get("payload_json") or "{}"))
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _post_typing(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        if channel_id not in self._channels:
            return _error(404, 10003, "Unknown Channel")
        self.typing_calls.append(channel_id)
        return web.Response(status=204)

    async def _create_dm(self, request: web.Request) -> web.Response:
        try:
            recipient_id = str((await request.json())["recipient_id"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 50035, "Invalid Form Body", _field_error(
                "recipient_id", "BASE_TYPE_REQUIRED", "This field is required"))
        user = self._users.get(recipient_id)
        if user is None:
            return _error(404, 10013, "Unknown User")
        for channel in self._channels.values():
            if channel["type"] == CHANNEL_DM and channel["recipients"][0]["id"] == recipient_id:
                return _json(channel)
        return _json(self._dm_channel(self._snowflake(), user))

    async def _get_commands(self, request: web.Request) -> web.Response:
        return _json(self._commands)

    async def _put_commands(self, request: web.Request) -> web.Response:
        commands = await request.json()
        self._commands = [{"id": self._snowflake(), "application_id": self.bot_id, "version": "1", **c}
                          for c in commands]
        return _json(self._commands)
