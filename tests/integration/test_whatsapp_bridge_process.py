"""The adapter and the REAL Node bridge (bridge/) speak the same protocol.

No WhatsApp is reachable here, so the bridge never gets past `connecting`/`closed`: a send must come back
as an `ack ok:false` "not connected", which the adapter turns into a retryable SendError."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nanofolks.channels.base import ChannelError, SendError
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.channels.whatsapp import WhatsAppChannel
from nanofolks.channels.whatsapp_bridge import SHIPPED_BRIDGE
from nanofolks.config.schema import WhatsAppConfig

pytestmark = pytest.mark.skipif(
    not (SHIPPED_BRIDGE / "node_modules").is_dir(),
    reason="bridge/node_modules missing: run `npm ci` in bridge/ to test against the real bridge",
)


async def ignore(_msg: InboundMessage) -> None:
    return None


async def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_adapter_starts_the_real_bridge_and_a_send_is_acked_not_connected(home: Path) -> None:
    chan = WhatsAppChannel(WhatsAppConfig(enabled=True, start_bridge=True), open_wait=2)
    await chan.start(ignore)
    try:
        assert chan.process is not None and chan.process.running
        assert chan.url.startswith("ws://127.0.0.1:") and not chan.url.endswith(":3001"), "--port 0 was used"
        assert (home / "whatsapp").is_dir(), "the bridge keeps its credentials under $NANOFOLKS_HOME/whatsapp"
        assert chan.account == "whatsapp" and chan.state in {"connecting", "needs_login"}
        with pytest.raises(SendError, match="not connected") as info:
            await chan.send(OutboundMessage("whatsapp", chan.account, "15552223333@s.whatsapp.net", "hi", "k1"))
        assert info.value.retryable and not info.value.maybe_delivered

        # The child dies: the adapter starts it again (a new port) and reconnects.
        old_pid = chan.process.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await until(lambda: chan.reconnects == 1)
        assert chan.process.pid != old_pid and chan.process.starts == 2
        with pytest.raises(SendError, match="not connected"):
            await chan.send(OutboundMessage("whatsapp", chan.account, "15552223333@s.whatsapp.net", "hi", "k2"))
    finally:
        await chan.stop()
    assert not chan.process.running


async def test_the_real_bridge_rejects_a_wrong_token(home: Path) -> None:
    proc = subprocess.Popen(
        ["node", "src/main.js", "--port", "0", "--auth-dir", str(home / "whatsapp")], cwd=SHIPPED_BRIDGE,
        env={**os.environ, "NANOFOLKS_BRIDGE_TOKEN": "the-right-token"}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.startswith("READY ws://127.0.0.1:"), line
        url = line.split()[1]
        wrong = WhatsAppChannel(WhatsAppConfig(enabled=True, bridge_url=url, bridge_token="not-the-token"))
        with pytest.raises(ChannelError, match="rejected the token"):
            await wrong.start(ignore)
        right = WhatsAppChannel(WhatsAppConfig(enabled=True, bridge_url=url, bridge_token="the-right-token"),
                                open_wait=1)
        await right.start(ignore)
        try:
            assert right.state in {"connecting", "needs_login"}
        finally:
            await right.stop()
    finally:
        proc.terminate()
        proc.wait(10)
