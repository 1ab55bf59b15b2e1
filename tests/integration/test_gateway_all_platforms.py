"""One `nanofolks gateway` with all four platforms: the real python-telegram-bot, discord.py, slack-bolt and the
WhatsApp adapter against loopback servers of their protocols, the real litellm against the scripted LLM server.

A slow or failing platform must not delay the others: one that answers every send after 5 s, one that never
finishes starting, one whose token is refused, one without credentials."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.whatsapp_bridge import ME, FakeBridge
from tests.integration.gateway_harness import Gateway

TG_ALICE = 111
DC_ANN, DC_ANN_DM = "7", "5007"
SL_ANN, SL_DM = "U1", "D1"
WA_ANN = "15552223333@s.whatsapp.net"
WAIT = 60.0


class Platforms:
    """The four loopback platforms, each able to say whether the reply to a given text has arrived."""

    def __init__(self, tg: FakeTelegram, dc: FakeDiscord, slack: FakeSlack, bridge: FakeBridge):
        self.tg, self.dc, self.slack, self.bridge = tg, dc, slack, bridge

    def push(self, platform: str, text: str) -> None:
        if platform == "telegram":
            self.tg.push_message(TG_ALICE, text, user_id=TG_ALICE)
        elif platform == "discord":
            self.dc.push_message(DC_ANN_DM, text, author_id=DC_ANN, author_name="ann")
        elif platform == "slack":
            self.slack.push_message(SL_DM, text, user=SL_ANN)
        else:
            self.bridge.push_message(WA_ANN, text, push_name="Ann")

    def answered(self, platform: str, text: str) -> bool:
        """The echo of `text` was accepted by the platform (for WhatsApp: acknowledged as delivered)."""
        sent = {
            "telegram": lambda: [m["text"] for m in list(self.tg.sent)],
            "discord": lambda: [m["content"] for m in list(self.dc.sent)],
            "slack": lambda: [p["text"] for p in list(self.slack.posted)],
            "whatsapp": lambda: [d["text"] for d in list(self.bridge.delivered)],
        }[platform]()
        return any(text in s for s in sent)


@pytest.fixture
def platforms() -> Iterator[Platforms]:
    with FakeTelegram() as tg, FakeDiscord() as dc, FakeSlack() as slack, FakeBridge() as bridge:
        slack.add_user(SL_ANN, "ann")
        yield Platforms(tg, dc, slack, bridge)


def configure(home: Path, p: Platforms, **overrides: dict) -> None:
    path = home / "config.json"
    config = json.loads(path.read_text())
    config["channels"] = {
        "telegram": {"enabled": True, "token": p.tg.token, "apiBase": p.tg.api_base, "allowFrom": [str(TG_ALICE)],
                     "pollTimeout": 5},
        "discord": {"enabled": True, "token": p.dc.token, "apiBase": p.dc.api_base, "gatewayUrl": p.dc.gateway_url,
                    "allowFrom": [DC_ANN]},
        "slack": {"enabled": True, "botToken": p.slack.bot_token, "appToken": p.slack.app_token,
                  "apiBase": p.slack.api_base, "allowFrom": [SL_ANN]},
        "whatsapp": {"enabled": True, "bridgeUrl": p.bridge.url, "bridgeToken": p.bridge.token,
                     "allowFrom": ["+1 555 222 3333"]},
    }
    for name, values in overrides.items():
        config["channels"][name].update(values)
    config["dashboard"] = {"enabled": False}  # the four chat platforms alone (the web channel has its own tests)
    path.write_text(json.dumps(config))


@pytest.fixture
def gateway(crew_home: Path) -> Iterator[Gateway]:
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def wait_until(condition: Callable[[], bool], what: str, gw: Gateway, timeout: float = WAIT) -> float:
    """Poll until `condition`; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}:\n{gw.output()}")
        time.sleep(0.01)
    return time.monotonic() - started


def test_all_four_platforms_and_one_answering_every_send_after_5s(gateway: Gateway, platforms: Platforms) -> None:
    configure(gateway.home, platforms)
    gateway.start()
    names = ("telegram", "discord", "slack", "whatsapp")
    for name in names:  # the first turn waits for litellm's import: warm every platform up first
        platforms.push(name, f"hello from {name}")
    for name in names:
        wait_until(lambda n=name: platforms.answered(n, f"hello from {n}"), f"{name}'s first reply", gateway)

    status = json.loads(run_cli("status", "--json", home=gateway.home).stdout)
    assert status["gateway"] == "running" and status["pids"] == [gateway.proc.pid]
    rows = {row["channel"]: row for row in status["channels"]}
    assert list(rows) == [*names, "web"] and not rows.pop("web")["enabled"]  # the dashboard is off here
    assert {n: (r["state"], r["pid"]) for n, r in rows.items()} == {n: ("running", gateway.proc.pid) for n in names}
    assert [rows[n]["account"] for n in names] == [str(platforms.tg.bot_id), platforms.dc.bot_id, platforms.slack.bot_user_id,
                                                   ME.replace(":7", "")]
    assert all(row["inbox"]["done"] == 1 and row["outbox"]["delivered"] == 1 for row in rows.values()), rows
    assert all(row["last_heartbeat"] for row in rows.values())
    listed = {row["channel"]: row for row in json.loads(run_cli("channels", "list", "--json", home=gateway.home).stdout)}
    assert [listed[n]["state"] for n in names] == ["running"] * 4
    shown = run_cli("status", home=gateway.home).stdout
    assert all(f"{n}" in shown for n in names) and "as @crew_bot" in shown and "delivered 1" in shown

    # Baseline: each fast platform's reply latency while WhatsApp is idle.
    fast = ("telegram", "discord", "slack")

    def reply_latency(name: str, text: str) -> float:
        started = time.monotonic()
        platforms.push(name, text)
        wait_until(lambda: platforms.answered(name, text), f"{name}: {text}", gateway)
        return time.monotonic() - started

    idle = {name: reply_latency(name, f"{name} while whatsapp idles") for name in fast}

    # WhatsApp now answers every send after 5 s. While its send is pending, the others answer.
    platforms.bridge.delay_acks(5)
    acks_before = len(platforms.bridge.acks)
    wa_started = time.monotonic()
    platforms.push("whatsapp", "whatsapp the slow one")
    platforms.bridge.wait_for_sends(2, WAIT)  # the reply went out to the bridge; its ack takes 5 s
    busy = {name: reply_latency(name, f"{name} while whatsapp hangs") for name in fast}
    still_pending = len(platforms.bridge.acks) == acks_before
    wait_until(lambda: platforms.answered("whatsapp", "whatsapp the slow one"), "whatsapp's slow reply", gateway)
    wa_latency = time.monotonic() - wa_started
    print("\nreply latency (s): " + ", ".join(f"{n} {idle[n]:.2f} idle / {busy[n]:.2f} while a whatsapp send "
                                               f"hung" for n in fast) + f"; whatsapp {wa_latency:.2f}")
    assert still_pending, "every fast platform answered while WhatsApp's send was still waiting for its ack"
    assert gateway.stop() == 0
    log = (gateway.home / "logs" / "gateway.log").read_text()
    for secret in (platforms.tg.token, platforms.dc.token, platforms.slack.bot_token, platforms.slack.app_token,
                   platforms.bridge.token, "sk-test"):
        assert secret not in log


class BlackHole:
    """A TCP port that accepts connections and never says a word: a bridge that never finishes starting."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with self.server:
            while True:
                try:
                    conn, _ = self.server.accept()
                except OSError:
                    return
                self.accepted.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


def test_a_stuck_a_refused_and_an_unconfigured_platform_delay_no_other(gateway: Gateway, platforms: Platforms) -> None:
    hole = BlackHole()
    try:
        configure(gateway.home, platforms, discord={"token": "not-the-token"}, slack={"botToken": ""},
                  whatsapp={"bridgeUrl": f"ws://127.0.0.1:{hole.port}"})
        gateway.start(wait=False)
        gateway.wait_log("telegram: channel running")
        platforms.push("telegram", "anyone there?")
        wait_until(lambda: platforms.answered("telegram", "anyone there?"), "telegram's reply", gateway)
        out = gateway.output()
        assert "discord: not started: discord rejected the bot token" in out
        assert "slack: not started: channels.slack.botToken" in out
        assert hole.accepted and "whatsapp: not started" not in out  # still waiting for the bridge's handshake
        assert "gateway running" not in out  # nor is the start as a whole over

        status = {row["channel"]: row for row in json.loads(run_cli("status", "--json", home=gateway.home).stdout)
                  ["channels"]}
        assert status["telegram"]["state"] == "running" and status["discord"]["state"] == "stopped"
        assert status["slack"]["configured"] is False and status["whatsapp"]["state"] == "starting"
        assert gateway.stop(signal.SIGTERM) == 0  # a start still in progress does not hold up the stop
        assert "gateway stopped" in gateway.output()
    finally:
        hole.close()

    configure(gateway.home, platforms, telegram={"enabled": False}, discord={"token": "not-the-token"},
              slack={"enabled": False}, whatsapp={"enabled": False})
    alone = Gateway(gateway.home).start(wait=False)
    try:
        assert alone.proc.wait(WAIT) == 1  # not a single channel started
    finally:
        alone.close()
    assert "error: no channel started: discord: discord rejected the bot token" in alone.output()
