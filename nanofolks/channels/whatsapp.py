"""WhatsApp through the Node bridge in bridge/ (protocol in bridge/README.md), over a loopback WebSocket.

The adapter authenticates with the shared token, then one reader task takes every frame: `message`
frames go to a queue that one delivery task hands to `on_message` in order (a slow inbox never delays
acks), `ack` frames resolve the send waiting on that `requestId`, `status`/`qr` frames set the state.

- Sends use the outbox key as `requestId`: the bridge remembers acked ids, so a resend after a restart
  is acknowledged again instead of delivered twice.
- The protocol has no delivery ack for inbound messages: the bridge counts a message as delivered once
  written to our socket, so one that arrives just before a crash is lost (the bridge skips re-deliveries).
- After a drop the adapter reconnects with backoff (restarting its own bridge child if that died); acks
  produced meanwhile are queued by the bridge and resolve the waiting sends. It stops reconnecting when
  WhatsApp logged the device out or another client took the bridge over.
- There is no typing frame in the protocol: `typing()` does nothing. Nor a quote/reply field:
  `reply_to` is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from typing import Any

from nanofolks.channels.base import ChannelError, OnMessage, SendError
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.channels.whatsapp_bridge import BridgeProcess
from nanofolks.config.schema import WhatsAppConfig

log = logging.getLogger("nanofolks.whatsapp")

ACK_TIMEOUT = 60.0  # seconds a send waits for its ack once the frame went out
OPEN_WAIT = 10.0  # seconds start() waits for WhatsApp to be open, to learn our own number
AUTH_TIMEOUT = 15.0  # seconds for the bridge's answer to the auth frame
CONNECT_ATTEMPTS = 3  # at start; after that the reconnect loop never gives up
RECONNECT_MIN, RECONNECT_MAX = 0.5, 30.0
MAX_FRAME = 4 * 1024 * 1024
FALLBACK_ACCOUNT = "whatsapp"  # when WhatsApp is not open at start, our number is unknown
PHONE_DOMAIN = "@s.whatsapp.net"
CLOSE_AUTH_REQUIRED, CLOSE_REPLACED, CLOSE_BAD_TOKEN = 4001, 4002, 4003
# Bridge errors that a later retry can cure (WhatsApp reconnecting, rate limit, a timeout on its side).
_RETRYABLE = re.compile(r"not connected|connection (?:closed|lost|failure)|timed? ?out|rate.?overlimit|restart",
                        re.IGNORECASE)
LOGIN_HINT = ("stop the gateway, run `nanofolks channels login whatsapp` to link this device, "
              "then start the gateway again")


def bare_jid(jid: str) -> str:
    """`15550001111:7@s.whatsapp.net` -> `15550001111@s.whatsapp.net`: the account, not one linked device."""
    user, at, domain = jid.partition("@")
    return f"{user.split(':', 1)[0]}{at}{domain}"


# --- the channel ------------------------------------------------------------------------------------


class WhatsAppChannel:
    platform = "whatsapp"

    def __init__(self, config: WhatsAppConfig, *, ack_timeout: float = ACK_TIMEOUT, open_wait: float = OPEN_WAIT,
                 connect_attempts: int = CONNECT_ATTEMPTS):
        if not config.bridge_token and not config.start_bridge:
            raise ChannelError("channels.whatsapp.bridgeToken is empty (the bridge's NANOFOLKS_BRIDGE_TOKEN)")
        self.config = config
        self.ack_timeout = ack_timeout
        self.open_wait = open_wait
        self.connect_attempts = connect_attempts
        # Our own child needs no configured secret: a fresh one per run is known to both sides.
        self._token = config.bridge_token or secrets.token_urlsafe(32)
        self.url = config.bridge_url
        self.process = BridgeProcess(config, self._token) if config.start_bridge else None
        self.username = ""  # our number, for `nanofolks status`
        self.reconnects = 0
        self._account = ""
        self._me = ""  # our bare phone JID, once a status frame said it
        self._wa_state = "unknown"  # WhatsApp's side, as the bridge reports it
        self._halted = ""  # logged_out | replaced: the reconnect loop has given up
        self._ws: Any = None  # the authenticated websockets ClientConnection
        self._pending: dict[str, asyncio.Future[dict]] = {}
        self._inbound: asyncio.Queue[dict] = asyncio.Queue()
        self._on_message: OnMessage | None = None
        self._known = asyncio.Event()  # set once WhatsApp's state is settled enough to know who we are
        self._tasks: list[asyncio.Task] = []
        self._started = self._stopped = False

    # --- identity and state -----------------------------------------------------------------------

    @property
    def account(self) -> str:
        return self._account

    @property
    def state(self) -> str:
        if self._stopped or not self._started:
            return "stopped" if self._stopped else "starting"
        if self._halted:
            return self._halted
        if self._ws is None:
            return "reconnecting"
        return {"open": "running", "loggedOut": "logged_out", "qr": "needs_login"}.get(self._wa_state, "connecting")

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        if self.process is not None:
            self.url = await self.process.start()
        try:
            ws = await self._connect_at_start()
        except BaseException:
            if self.process is not None:
                await self.process.stop()
            raise
        self._started = True
        self._tasks.append(asyncio.create_task(self._run(ws), name="whatsapp-bridge"))
        if not self._known.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._known.wait(), self.open_wait)
        # Fixed from here on: the gateway files inbox and outbox rows under it.
        self._account = self._me or FALLBACK_ACCOUNT
        if not self._me:
            log.warning("whatsapp: not connected to WhatsApp yet (state %s); account id %r until the next start",
                        self._wa_state, FALLBACK_ACCOUNT)
        self._tasks.append(asyncio.create_task(self._deliver_inbound(), name="whatsapp-inbound"))

    async def _connect_at_start(self) -> Any:
        from websockets.exceptions import InvalidHandshake, WebSocketException

        delay = RECONNECT_MIN
        for attempt in range(1, self.connect_attempts + 1):
            try:
                return await self._connect()
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
                if attempt == self.connect_attempts:
                    hint = "" if self.process else " (start it, or set channels.whatsapp.startBridge)"
                    raise ChannelError(f"cannot reach the WhatsApp bridge at {self.url}{hint}: {exc}") from exc
                log.warning("whatsapp: bridge at %s unreachable (%s); retrying", self.url, exc)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _connect(self) -> Any:
        """Open and authenticate; the first frame the bridge answers with (the status snapshot) is handled."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        # proxy=None: the bridge is on loopback, never behind a proxy from the environment.
        ws = await connect(self.url, open_timeout=AUTH_TIMEOUT, max_size=MAX_FRAME, ping_interval=20,
                           ping_timeout=20, close_timeout=2, proxy=None)
        try:
            await ws.send(json.dumps({"type": "auth", "token": self._token}))
            first = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
        except ConnectionClosed:
            if ws.close_code == CLOSE_BAD_TOKEN:
                raise ChannelError("the WhatsApp bridge rejected the token: channels.whatsapp.bridgeToken must "
                                   "equal the bridge's NANOFOLKS_BRIDGE_TOKEN") from None
            if ws.close_code == CLOSE_AUTH_REQUIRED:
                raise ChannelError(f"the WhatsApp bridge refused authentication: {ws.close_reason}") from None
            raise
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        self._handle(first)
        return ws

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self.process is not None:
            await self.process.stop()

    # --- receiving --------------------------------------------------------------------------------

    async def _run(self, ws: Any) -> None:
        """Read the bridge until the socket drops, then reconnect with backoff, until told to give up."""
        from websockets.exceptions import InvalidHandshake, WebSocketException

        delay = RECONNECT_MIN
        while True:
            if ws is not None:
                await self._read(ws)
                self._ws = None
                if not self._should_reconnect(ws):
                    return
                log.warning("whatsapp: connection to the bridge lost (%s); reconnecting", ws.close_code)
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)
            try:
                if self.process is not None and not self.process.running:
                    log.warning("whatsapp: the bridge process exited; starting it again")
                    self.url = await self.process.start()
                ws = await self._connect()
            except (ChannelError, OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
                ws = None
                log.warning("whatsapp: reconnecting to the bridge failed (%s); retrying in %.1fs", exc, delay)
                continue
            self.reconnects += 1
            delay = RECONNECT_MIN
            log.info("whatsapp: reconnected to the bridge")

    def _should_reconnect(self, ws: Any) -> bool:
        if ws.close_code == CLOSE_REPLACED:
            self._halted = "replaced"
            log.error("whatsapp: another client took over the bridge at %s; not reconnecting (one gateway per "
                      "bridge)", self.url)
            return False
        if self._wa_state == "loggedOut":
            self._halted = "logged_out"
            log.error("whatsapp: logged out and the bridge connection closed; not reconnecting: %s", LOGIN_HINT)
            return False
        return True

    async def _read(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._handle(raw)

    def _handle(self, raw: str | bytes) -> None:
        """One frame from the bridge; never raises (a bad frame is logged and skipped)."""
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            log.warning("whatsapp: bridge sent a frame that is not a JSON object: %.200r", raw)
            return
        kind = frame.get("type")
        if kind == "message":
            self._inbound.put_nowait(frame)
        elif kind == "ack":
            future = self._pending.get(str(frame.get("requestId")))
            if future is not None and not future.done():
                future.set_result(frame)
            else:  # a late ack (after its send timed out) or one from before a restart
                log.info("whatsapp: ack for %s with no send waiting: ok=%s", frame.get("requestId"), frame.get("ok"))
        elif kind == "status":
            self._on_status(frame)
        elif kind == "qr":
            if self._wa_state != "qr":
                log.error("whatsapp: the bridge is not linked to a WhatsApp account: %s", LOGIN_HINT)
            self._wa_state = "qr"
            self._known.set()
        elif kind == "error":
            log.warning("whatsapp: the bridge could not act on a frame: %s", frame.get("error"))
        else:
            log.info("whatsapp: unknown bridge frame type %r ignored", kind)

    def _on_status(self, frame: dict) -> None:
        state = str(frame.get("state"))
        previous, self._wa_state = self._wa_state, state
        if isinstance(frame.get("me"), str) and frame["me"]:
            self._me = bare_jid(frame["me"])
            self.username = self._me.split("@", 1)[0]
        if state == "open":
            self._known.set()
            if previous != "open":
                log.info("whatsapp: connected as %s", self._me or "?")
        elif state == "loggedOut":
            self._known.set()
            if previous != "loggedOut":
                log.error("whatsapp: WhatsApp logged this device out (%s): %s", frame.get("reason", "no reason"),
                          LOGIN_HINT)
        elif state == "closed" and previous == "open":
            log.warning("whatsapp: WhatsApp connection dropped (%s); the bridge retries in %ss",
                        frame.get("reason"), (frame.get("retryInMs") or 0) / 1000)

    async def _deliver_inbound(self) -> None:
        """Hand messages over in order; a failing store is retried (the bridge cannot send them again)."""
        while True:
            frame = await self._inbound.get()
            message = self._parse(frame)
            delay = 1.0
            while message is not None:
                try:
                    await self._on_message(message)  # type: ignore[misc]
                    break
                except Exception:
                    log.exception("whatsapp: could not store message %s; retrying in %.0fs", message.message_id, delay)
                    await asyncio.sleep(delay)
                    delay = min(RECONNECT_MAX, delay * 2)

    def _parse(self, frame: dict) -> InboundMessage | None:
        msg_id, chat_id, text, sender = (frame.get(k) for k in ("id", "chatId", "text", "sender"))
        if not all(isinstance(v, str) and v for v in (msg_id, chat_id, text, sender)):
            log.warning("whatsapp: message frame without id, chatId, sender or text skipped: %.300r", frame)
            return None
        # Prefer the phone-number JID (what allowFrom lists); keep the other one (often a @lid) as well.
        jids = [bare_jid(j) for j in (frame.get("senderAlt"), sender) if isinstance(j, str) and j]
        jids.sort(key=lambda j: not j.endswith(PHONE_DOMAIN))
        mentioned = bool(frame.get("mentionedMe") or frame.get("replyToMe"))
        if frame.get("mentionedMe") and self._me:
            text = re.sub(rf"@{re.escape(self.username)}\b", "", text)  # WhatsApp writes a mention as @number
            text = re.sub(r"[ \t]{2,}", " ", text).strip() or text
        return InboundMessage(
            platform=self.platform,
            account=self.account,
            chat_id=chat_id,
            message_id=msg_id,
            text=text,
            sender_id=jids[0],
            sender_username=jids[1] if len(jids) > 1 and jids[1] != jids[0] else "",
            sender_name=str(frame.get("pushName") or ""),
            chat_type="group" if frame.get("isGroup") else "private",
            mentioned=mentioned,
        )

    # --- sending ----------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str:
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        if ws is None:
            raise SendError("not connected to the WhatsApp bridge", retryable=True)
        request_id = message.key
        future = self._pending.get(request_id)
        if future is None:
            future = self._pending[request_id] = asyncio.get_running_loop().create_future()
        frame = {"type": "send", "requestId": request_id, "chatId": message.chat_id,
                 "text": message.text}
        try:
            try:
                await ws.send(json.dumps(frame))
            except ConnectionClosed as exc:
                raise SendError(f"the bridge connection closed before the message went out ({exc})",
                                retryable=True) from exc
            try:
                # Survives a reconnect: the bridge queues the ack for the next client.
                ack = await asyncio.wait_for(asyncio.shield(future), self.ack_timeout)
            except TimeoutError:
                raise SendError(f"no ack from the WhatsApp bridge within {self.ack_timeout:.0f}s",
                                maybe_delivered=True) from None
        finally:
            if self._pending.get(request_id) is future:
                del self._pending[request_id]
        if ack.get("ok"):
            return str(ack.get("messageId") or "")
        raise _ack_error(ack)


def _ack_error(ack: dict) -> SendError:
    error = str(ack.get("error") or "the bridge refused the message")
    parts = ack.get("partsSent")
    if isinstance(parts, int) and parts > 0:  # part of a long text went out: a resend would repeat it
        return SendError(f"{error} ({parts} part(s) already sent)", maybe_delivered=True)
    return SendError(error, retryable=bool(_RETRYABLE.search(error)))
