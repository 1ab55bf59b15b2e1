"""Fake of the WhatsApp bridge (``bridge/``) for the Python adapter's tests.

It speaks the bridge's WebSocket protocol (see ``bridge/README.md``) on loopback, with WhatsApp itself scripted by
the test::

    with FakeBridge() as bridge:            # token "bridge-secret", free port
        ...connect the adapter to bridge.url with bridge.token...
        bridge.push_message("15552223333@s.whatsapp.net", "hi crew")
        [send] = bridge.wait_for_sends(1)
        assert send["text"].startswith("Aye")

Like the real bridge it refuses requests carrying an ``Origin`` header (403), closes a bad first frame with 4001 and a
wrong token with 4003, serves one authenticated client at a time (the older gets 4002), answers auth with the current
``status`` (then a pending ``qr``, then queued frames), queues ``message``/``ack`` frames while no client is connected,
acks every ``send`` by ``requestId`` and treats a ``requestId`` that already succeeded as a retry (acked again, not
delivered twice). It does not split long texts: ``delivered`` keeps each text whole.

The server runs in its own thread and asyncio loop, so sync and async tests can use it alike.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import threading
import time
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

ME = "15550001111:7@s.whatsapp.net"
CLOSE_AUTH_REQUIRED = 4001
CLOSE_REPLACED = 4002
CLOSE_BAD_TOKEN = 4003
MAX_FRAME = 4 * 1024 * 1024


class FakeBridge:
    def __init__(self, token: str = "bridge-secret", port: int = 0, *, auth_timeout: float = 10.0) -> None:
        self.token = token
        self.port = port
        self.auth_timeout = auth_timeout
        self.sends: list[dict] = []  # every `send` frame received, valid or not, retries included
        # first successful delivery per requestId: {requestId, chatId, text, messageId}
        self.delivered: list[dict] = []
        self.acks: list[dict] = []  # every ack produced, in order
        self.auth_failures = 0
        self.auth_count = 0  # successful authentications (a reconnect adds one)
        self.status: dict[str, Any] = {"state": "open", "me": ME}
        self._qr: str | None = None
        self._client: ServerConnection | None = None
        self._queue: list[dict] = []  # message/ack frames waiting for a client
        self._send_failures: list[str] = []
        self._ack_delay = 0.0
        self._acked: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._stop_event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()  # pending sends; they outlive the connection that asked

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def authenticated(self) -> bool:
        """True while an authenticated client is connected."""
        return self._client is not None

    def start(self) -> FakeBridge:
        if self._thread is not None:
            raise RuntimeError("FakeBridge already started")
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="fake-whatsapp-bridge", daemon=True
        )
        self._thread.start()
        if not ready.wait(30):
            raise TimeoutError("FakeBridge did not start")
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close every connection (1001) and the listening socket. ``start()`` again reuses the same port."""
        if self._thread is None:
            return
        assert self._loop is not None and self._stop_event is not None
        self._loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join(30)
        self._thread = None
        self._client = None

    def __enter__(self) -> FakeBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        asyncio.run(self._main(ready, errors))

    async def _main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            self._server = await serve(
                self._handle, "127.0.0.1", self.port, process_request=_refuse_origin, max_size=MAX_FRAME
            )
        except OSError as exc:
            errors.append(exc)
            ready.set()
            return
        self.port = self._server.sockets[0].getsockname()[1]  # keep it: a restart binds the same port
        ready.set()
        await self._stop_event.wait()
        for task in self._tasks:
            task.cancel()
        self._server.close()
        await self._server.wait_closed()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("FakeBridge is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # ------------------------------------------------------------------ scripting WhatsApp

    def push_message(
        self,
        chat_id: str,
        text: str,
        *,
        sender: str | None = None,
        is_group: bool = False,
        mentioned_me: bool = False,
        reply_to_me: bool = False,
        msg_id: str | None = None,
        sender_alt: str | None = None,
        push_name: str | None = None,
        timestamp: int | None = None,
    ) -> str:
        """A message from WhatsApp: delivered now, or queued until a client authenticates. Returns its id."""
        msg_id = msg_id or f"FAKE{next(self._ids):08d}"
        frame = {
            "type": "message",
            "id": msg_id,
            "chatId": chat_id,
            "sender": sender or chat_id,
            "senderAlt": sender_alt,
            "pushName": push_name,
            "text": text,
            "timestamp": int(time.time()) if timestamp is None else timestamp,
            "isGroup": is_group,
            "mentionedMe": mentioned_me,
            "replyToMe": reply_to_me,
        }
        self._call(self._deliver(frame))
        return msg_id

    def set_status(self, state: str, **extra: Any) -> None:
        """WhatsApp's side changed: connecting | open | closed | loggedOut. Sends fail unless ``open``."""
        self.status = {"state": state, **({"me": ME} if state == "open" else {}), **extra}
        if state == "open":
            self._qr = None
        self._call(self._live({"type": "status", **self.status}))

    def push_qr(self, qr: str) -> None:
        """A pairing code to scan (also given to clients that connect later, until ``open``)."""
        self._qr = qr
        self._call(self._live({"type": "qr", "qr": qr}))

    def fail_next_send(self, error: str = "WhatsApp refused the message", count: int = 1) -> None:
        with self._cond:
            self._send_failures.extend([error] * count)

    def delay_acks(self, seconds: float) -> None:
        """Every later send is acked only after ``seconds`` (0 restores prompt acks)."""
        self._ack_delay = seconds

    def drop_connection(self, *, graceful: bool = False) -> None:
        """Cut the client's connection: abruptly (like a crash, no close frame) or with 1001 when ``graceful``."""
        self._call(self._drop(graceful))

    # ------------------------------------------------------------------ waiting

    def wait_for_sends(self, n: int, timeout: float = 30) -> list[dict]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.sends) >= n, timeout):
                raise TimeoutError(f"expected {n} send frame(s), got {len(self.sends)}: {self.sends}")
            return list(self.sends)

    def wait_for_auth(self, n: int = 1, timeout: float = 30) -> None:
        """Wait until ``n`` successful authentications happened in total (reconnects count)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.auth_count >= n and self._client is not None, timeout):
                raise TimeoutError(f"expected {n} authentication(s), got {self.auth_count}")

    # ------------------------------------------------------------------ protocol (loop thread)

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            first = await asyncio.wait_for(ws.recv(), self.auth_timeout)
        except TimeoutError:
            await self._refuse(ws, CLOSE_AUTH_REQUIRED, "authentication timeout")
            return
        except ConnectionClosed:
            return
        frame = _parse(first)
        if frame is None or frame.get("type") != "auth":
            await self._refuse(ws, CLOSE_AUTH_REQUIRED, 'first frame must be {"type":"auth","token":...}')
            return
        token = frame.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            await self._refuse(ws, CLOSE_BAD_TOKEN, "invalid token")
            return

        older, self._client = self._client, ws
        if older is not None:
            await older.close(CLOSE_REPLACED, "replaced by a newer client")
        with self._cond:
            self.auth_count += 1
            self._cond.notify_all()
        await ws.send(json.dumps({"type": "status", **self.status}))
        if self._qr:
            await ws.send(json.dumps({"type": "qr", "qr": self._qr}))
        while self._queue and self._client is ws:
            await ws.send(json.dumps(self._queue[0]))
            self._queue.pop(0)

        try:
            async for raw in ws:
                frame = _parse(raw)
                if frame is None:
                    await ws.send(json.dumps({"type": "error", "error": "frames must be JSON objects"}))
                elif frame.get("type") != "send":
                    error = f"unknown frame type: {json.dumps(frame.get('type'))}"
                    await ws.send(json.dumps({"type": "error", "error": error}))
                else:
                    # A task per send: a delayed ack must not stall the frames behind it.
                    task = asyncio.create_task(self._on_send(ws, frame))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            # Acks still pending then go to the queue for the next client, as in the real bridge.
            if self._client is ws:
                self._client = None

    async def _refuse(self, ws: ServerConnection, code: int, reason: str) -> None:
        with self._cond:
            self.auth_failures += 1
        await ws.close(code, reason)

    async def _on_send(self, ws: ServerConnection, frame: dict) -> None:
        request_id = frame.get("requestId")
        with self._cond:
            self.sends.append(frame)
            self._cond.notify_all()
        if not isinstance(request_id, str) or not request_id:
            await _send(ws, {"type": "error", "error": "send frames need a non-empty string requestId"})
            return
        if self._ack_delay:
            await asyncio.sleep(self._ack_delay)
        ack = self._acked.get(request_id) or self._result(request_id, frame.get("chatId"), frame.get("text"))
        await self._deliver(ack)

    def _result(self, request_id: str, chat_id: Any, text: Any) -> dict:
        def fail(error: str) -> dict:
            return {"type": "ack", "requestId": request_id, "ok": False, "error": error, "partsSent": 0}

        if not isinstance(chat_id, str) or "@" not in chat_id:
            return fail("chatId must be a WhatsApp JID such as 15551234567@s.whatsapp.net")
        if not isinstance(text, str) or not text.strip():
            return fail("text must be a non-empty string")
        if self.status["state"] != "open":
            return fail(f"WhatsApp is not connected (state: {self.status['state']})")
        with self._cond:
            failure = self._send_failures.pop(0) if self._send_failures else None
        if failure is not None:
            return fail(failure)
        message_id = f"3EB0{next(self._ids):016X}"
        ack = {"type": "ack", "requestId": request_id, "ok": True, "messageId": message_id}
        self._acked[request_id] = ack
        with self._cond:
            self.delivered.append(
                {"requestId": request_id, "chatId": chat_id, "text": text, "messageId": message_id}
            )
        return ack

    async def _deliver(self, frame: dict) -> None:
        """Frames that must not be lost (message, ack): to the client, else queued for the next one."""
        if frame["type"] == "ack":
            with self._cond:
                self.acks.append(frame)
        if not await _send(self._client, frame):
            self._queue.append(frame)

    async def _live(self, frame: dict) -> None:
        """Status and QR: only to a connected client (a later one gets a snapshot at auth)."""
        await _send(self._client, frame)

    async def _drop(self, graceful: bool) -> None:
        ws = self._client
        if ws is None:
            raise RuntimeError("no authenticated client to drop")
        self._client = None
        if graceful:
            await ws.close(1001, "bridge stopping")
        else:
            ws.transport.abort()


async def _send(ws: ServerConnection | None, frame: dict) -> bool:
    if ws is None:
        return False
    try:
        await ws.send(json.dumps(frame))
    except ConnectionClosed:
        return False
    return True


def _parse(raw: str | bytes) -> dict | None:
    if isinstance(raw, bytes):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _refuse_origin(connection: ServerConnection, request: Any) -> Any:
    # Browsers always send Origin on WebSocket requests; the real bridge refuses them before the handshake.
    if "Origin" in request.headers:
        return connection.respond(HTTPStatus.FORBIDDEN, "Origin header not allowed\n")
    return None
