"""The Node WhatsApp bridge (bridge/, see its README) as a child process: served for the gateway
(`startBridge`), or run with `--login` by `nanofolks channels login whatsapp` to show the QR code.

Its credentials live in $NANOFOLKS_HOME/whatsapp/. The token goes through the environment, never argv,
which other users of the machine can read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

from nanofolks.channels.base import ChannelError
from nanofolks.config import paths
from nanofolks.config.schema import WhatsAppConfig

log = logging.getLogger("nanofolks.whatsapp.bridge")

SHIPPED_BRIDGE = paths.shipped("bridge")
READY_TIMEOUT = 30.0  # seconds for `node` to load Baileys and listen
STOP_GRACE = 5.0


def auth_dir() -> Path:
    return paths.home() / "whatsapp"


def bridge_dir(config: WhatsAppConfig) -> Path:
    return Path(config.bridge_dir).expanduser() if config.bridge_dir else SHIPPED_BRIDGE


def is_linked() -> bool:
    """Baileys writes creds.json once a device is linked."""
    return (auth_dir() / "creds.json").is_file()


def bridge_argv(config: WhatsAppConfig, *, login: bool) -> list[str]:
    """`node src/main.js ...`, or a ChannelError saying what to install."""
    node = shutil.which("node")
    if node is None:
        raise ChannelError("the WhatsApp bridge needs Node.js >= 20 on PATH (`node` not found)")
    folder = bridge_dir(config)
    main = folder / "src" / "main.js"
    if not main.is_file():
        raise ChannelError(f"no WhatsApp bridge at {folder} (src/main.js missing): check channels.whatsapp.bridgeDir")
    if not (folder / "node_modules").is_dir():
        raise ChannelError(f"the WhatsApp bridge's dependencies are not installed: run `npm ci` in {folder}")
    # Serving: any free port, announced by READY; and exit when our stdin pipe closes (the gateway died).
    mode = ["--login"] if login else ["--port", "0", "--exit-on-stdin-close"]
    return [node, str(main), "--auth-dir", str(auth_dir()), *mode]


def bridge_env(token: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NANOFOLKS_BRIDGE_TOKEN"}
    if token:
        env["NANOFOLKS_BRIDGE_TOKEN"] = token
    return env


class BridgeProcess:
    """`node src/main.js --port 0` as the gateway's child; `start()` returns the URL it printed."""

    def __init__(self, config: WhatsAppConfig, token: str, ready_timeout: float = READY_TIMEOUT):
        self.config = config
        self.token = token
        self.ready_timeout = ready_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task | None = None
        self._stdout_task: asyncio.Task | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> str:
        await self.stop()  # a restart after the child died: reap it first
        argv = bridge_argv(self.config, login=False)
        # Own session: a Ctrl-C in the terminal reaches the gateway only, which then stops the child itself.
        # stdin is a pipe that closes when the gateway dies, even by kill -9: a bridge may exit on its EOF.
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=bridge_env(self.token), cwd=str(bridge_dir(self.config)),
            start_new_session=True,
        )
        self.starts += 1
        self._stderr_task = asyncio.create_task(_forward_logs(self._proc.stderr), name="whatsapp-bridge-stderr")
        try:
            url = await asyncio.wait_for(self._read_ready(), self.ready_timeout)
        except (TimeoutError, ChannelError) as exc:
            await self.stop()
            if isinstance(exc, ChannelError):
                raise
            raise ChannelError(f"the WhatsApp bridge did not print READY within {self.ready_timeout:.0f}s") from None
        log.info("whatsapp bridge started (pid %s) at %s", self._proc.pid, url)
        return url

    async def _read_ready(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            text = line.decode(errors="replace").strip()
            if text.startswith("READY "):
                # Nothing else comes on stdout while serving; drain it anyway so the child never blocks on it.
                self._stdout_task = asyncio.create_task(self._proc.stdout.read(), name="whatsapp-bridge-stdout")
                return text.split(" ", 1)[1]
            log.info("whatsapp bridge: %s", text)
        code = await self._proc.wait()
        raise ChannelError(f"the WhatsApp bridge exited with code {code} before it was ready (see the log above)")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()  # SIGTERM: the bridge closes its socket and WhatsApp connection cleanly
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 1.0)
            self._stderr_task = None


async def _forward_logs(stream: asyncio.StreamReader | None) -> None:
    """The bridge logs pino JSON lines on stderr: re-log them under our logger (errors as errors)."""
    if stream is None:
        return
    while line := await stream.readline():
        text = line.decode(errors="replace").strip()
        if not text:
            continue
        level, message = logging.WARNING, text
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            record = json.loads(text)
            level = logging.ERROR if int(record.get("level", 40)) >= 50 else logging.WARNING
            message = str(record.get("msg") or text)
        log.log(level, "whatsapp bridge: %s", message[:2000])
