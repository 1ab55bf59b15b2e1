"""Base for loopback fakes: an aiohttp app served on 127.0.0.1 from a background thread with its own loop.

The fakes keep their state on the server loop; tests talk to them through ``call()`` (runs a function
there and waits for its result) and the ``wait_until*`` helpers. Sync waits are for tests that drive a
subprocess; async waits are for tests whose client library runs on the test's own event loop (a sync
wait there would block that loop and with it the client being waited for).
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")
CALL_TIMEOUT = 30.0


@dataclass
class ScriptedFailure:
    """Answer the next ``count`` requests matching ``pattern`` with ``status`` instead of serving them."""

    pattern: str  # "POST", "/channels/*/messages", "POST /channels/*/messages", "chat.postMessage"
    status: int
    retry_after: float
    count: int
    is_global: bool = False

    def matches(self, method: str, path: str) -> bool:
        method_part, _, path_part = self.pattern.partition(" ")
        if not path_part:
            if method_part.isupper() and "/" not in method_part:
                return method_part == method
            return fnmatch.fnmatchcase(path, method_part)
        return method_part == method and fnmatch.fnmatchcase(path, path_part)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


class LoopbackServer:
    """Start/stop an aiohttp app on 127.0.0.1; subclasses build the app in ``_routes()``."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task] = set()
        self._failures: list[ScriptedFailure] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, API path, status) of every API call

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not self._ready.wait(CALL_TIMEOUT):
            raise RuntimeError(f"{type(self).__name__} did not start")
        if self._startup_error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        if self._thread is None or self.loop is None:
            return
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(CALL_TIMEOUT)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._api_middleware, *self._middlewares()])
        app.add_routes(self._routes())
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._requested_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        await self._on_started()

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()

    # ----------------------------------------------------------------- subclass hooks

    def _routes(self) -> list[web.AbstractRouteDef]:
        raise NotImplementedError

    async def _on_started(self) -> None:
        """Start background tasks (via ``_spawn``) once the server listens."""

    def _api_path(self, request: web.Request) -> str | None:
        """The path ``fail_next`` patterns and ``requests`` use, or None for non-API requests (WebSockets)."""
        raise NotImplementedError

    def _middlewares(self) -> list:
        """Subclass middlewares, run inside the logging/failure one."""
        return []

    def _failure_response(self, failure: ScriptedFailure) -> web.Response:
        raise NotImplementedError

    # ----------------------------------------------------------------- shared machinery

    def _script_failure(self, pattern: str, status: int, retry_after: float, count: int,
                        is_global: bool = False) -> None:
        """Script the next ``count`` matching requests to fail with ``status`` (429 carries retry_after)."""
        if count < 1:
            raise ValueError("count must be >= 1")
        failure = ScriptedFailure(pattern, status, retry_after, count, is_global)
        self.call(self._failures.append, failure)

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Log API calls and answer scripted failures before the real handler sees them."""
        path = self._api_path(request)
        if path is None:
            return await handler(request)
        response: web.StreamResponse | None = None
        for failure in self._failures:
            if failure.count > 0 and failure.matches(request.method, path):
                failure.count -= 1
                self._failures = [f for f in self._failures if f.count > 0]
                response = self._failure_response(failure)
                break
        if response is None:
            response = await handler(request)
        self.requests.append((request.method, path, response.status))
        return response

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (a plain function or coroutine function) on the server loop; return its result."""
        if self.loop is None or not self.loop.is_running():
            raise RuntimeError(f"{type(self).__name__} is not running")

        async def run() -> T:
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(CALL_TIMEOUT)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
        """Block the calling thread until ``predicate()`` holds (polling), else TimeoutError."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    async def wait_until_async(self, predicate: Callable[[], bool], timeout: float = 30.0,
                               what: str = "condition") -> None:
        """Like ``wait_until`` but yields to the caller's event loop while polling."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def _accept_socket(self, request: web.Request, **kwargs: Any) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(**kwargs)
        await ws.prepare(request)
        self._sockets.add(ws)
        return ws

    def _forget_socket(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)

    @staticmethod
    def _abort(request: web.Request) -> None:
        """Cut the TCP connection without a close frame, like a network drop."""
        if request.transport is not None:
            request.transport.abort()
