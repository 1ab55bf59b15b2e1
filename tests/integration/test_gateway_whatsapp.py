"""`nanofolks gateway` starting the REAL Node bridge (bridge/) as its child: the child must not outlive it.

The gateway gives the bridge a stdin pipe and `--exit-on-stdin-close`; the kernel closes the pipe when the
gateway dies, by kill -9 too, and the bridge then stops by itself (it runs in its own session, so nothing else
would stop it)."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.channels.whatsapp_bridge import SHIPPED_BRIDGE
from tests.integration.gateway_harness import Gateway

pytestmark = pytest.mark.skipif(
    not (SHIPPED_BRIDGE / "node_modules").is_dir(),
    reason="bridge/node_modules missing: run `npm ci` in bridge/ to test against the real bridge",
)


def alive(pid: int) -> bool:
    """Running, and not a zombie nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture
def gateway(crew_home: Path) -> Iterator[Gateway]:
    path = crew_home / "config.json"
    config = json.loads(path.read_text())
    config["channels"] = {"whatsapp": {"enabled": True, "startBridge": True, "allowFrom": ["+15552223333"]}}
    path.write_text(json.dumps(config))
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def test_the_bridge_child_exits_when_the_gateway_is_killed(gateway: Gateway) -> None:
    gateway.start(wait=False)
    gateway.wait_log("whatsapp bridge started (pid")
    bridge_pid = int(re.search(r"whatsapp bridge started \(pid (\d+)\)", gateway.output()).group(1))
    assert alive(bridge_pid)
    gateway.stop(signal.SIGKILL)  # no chance to stop its child
    deadline = time.monotonic() + 60
    while alive(bridge_pid):
        assert time.monotonic() < deadline, "the bridge outlived the gateway"
        time.sleep(0.05)

    gateway.start(wait=False)  # the next gateway starts a bridge of its own: nothing holds the old one's lock
    gateway.wait_log("whatsapp bridge started (pid")
    assert gateway.stop(signal.SIGTERM) == 0
