"""The WhatsApp adapter against the fake bridge (tests/fakes/whatsapp_bridge.py), with the real `websockets`."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from nanofolks.channels.base import ChannelError, SendError
from nanofolks.channels.formatting import WHATSAPP_LIMIT, markdown_to_whatsapp, split_for_whatsapp, utf16_len
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.channels.registry import CHANNELS
from nanofolks.channels.whatsapp import WhatsAppChannel, _ack_error, bare_jid
from nanofolks.config.schema import WhatsAppConfig
from tests.conftest import run_cli
from tests.fakes.whatsapp_bridge import FakeBridge

ME = "15550001111@s.whatsapp.net"
DM = "15552223333@s.whatsapp.net"
GROUP = "120363000000000001@g.us"
ANN_PHONE = "15554445555@s.whatsapp.net"
ANN_LID = "987654321012345@lid"


class Inbox:
    """Collects what the adapter hands over; can be told to fail (a locked database)."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.fail = 0
        self.calls = 0

    async def __call__(self, msg: InboundMessage) -> None:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise OSError("database is locked")
        self.messages.append(msg)

    async def wait(self, n: int, timeout: float = 30) -> list[InboundMessage]:
        await until(lambda: len(self.messages) >= n, timeout)
        return self.messages


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def config(bridge: FakeBridge, **extra: object) -> WhatsAppConfig:
    return WhatsAppConfig(enabled=True, bridge_url=bridge.url, bridge_token=bridge.token, **extra)


def out(text: str, key: str = "inbox:1:0", chat: str = DM) -> OutboundMessage:
    return OutboundMessage("whatsapp", ME, chat, text, key)


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    with FakeBridge() as fake:
        yield fake


@pytest.fixture
async def channel(bridge: FakeBridge) -> AsyncIterator[tuple[WhatsAppChannel, Inbox]]:
    chan = WhatsAppChannel(config(bridge), ack_timeout=30, open_wait=5)
    inbox = Inbox()
    await chan.start(inbox)
    yield chan, inbox
    await chan.stop()


# --- start and authentication ---------------------------------------------------------------------


async def test_start_authenticates_and_learns_our_number(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, _ = channel
    assert bridge.auth_count == 1 and bridge.auth_failures == 0
    assert chan.account == ME, "the device suffix (:7) is dropped: the account is the number, not the device"
    assert chan.username == "15550001111"
    assert chan.state == "running"
    await chan.stop()
    assert chan.state == "stopped"
    await asyncio.to_thread(_wait, lambda: not bridge.authenticated)


async def test_bad_token_is_a_clear_channel_error(bridge: FakeBridge) -> None:
    chan = WhatsAppChannel(WhatsAppConfig(enabled=True, bridge_url=bridge.url, bridge_token="wrong"))
    with pytest.raises(ChannelError, match="rejected the token.*bridgeToken"):
        await chan.start(Inbox())
    assert bridge.auth_failures == 1, "a rejected token is not retried"
    assert bridge.auth_count == 0


async def test_unreachable_bridge_is_a_channel_error() -> None:
    fake = FakeBridge()
    with fake:
        url = fake.url  # a port that was free a moment ago and is closed now
    chan = WhatsAppChannel(WhatsAppConfig(enabled=True, bridge_url=url, bridge_token="t"), connect_attempts=2)
    with pytest.raises(ChannelError, match="cannot reach the WhatsApp bridge.*startBridge"):
        await chan.start(Inbox())


def test_a_token_is_required_unless_the_gateway_starts_the_bridge() -> None:
    with pytest.raises(ChannelError, match="bridgeToken is empty"):
        WhatsAppChannel(WhatsAppConfig(enabled=True))
    own = WhatsAppChannel(WhatsAppConfig(enabled=True, start_bridge=True))
    assert own.process is not None and len(own.process.token) >= 32, "a fresh random token for our own child"


async def test_not_linked_yet_starts_with_the_fallback_account_and_needs_login(
    bridge: FakeBridge, caplog: pytest.LogCaptureFixture
) -> None:
    bridge.set_status("connecting")
    bridge.push_qr("2@abc")
    chan = WhatsAppChannel(config(bridge), open_wait=30)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, "nanofolks.whatsapp"):
        await chan.start(Inbox())
    try:
        assert time.monotonic() - started < 25, "a QR settles the state: start() does not wait for open_wait"
        assert chan.account == "whatsapp"
        assert chan.state == "needs_login"
        assert "nanofolks channels login whatsapp" in caplog.text
        await asyncio.to_thread(bridge.set_status, "open")
        await until(lambda: chan.state == "running")
        assert chan.account == "whatsapp", "the account never changes while running (rows are filed under it)"
    finally:
        await chan.stop()


# --- receiving --------------------------------------------------------------------------------------


async def test_direct_message_is_mapped(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    msg_id = await asyncio.to_thread(bridge.push_message, DM, "hi crew", push_name="Bob")
    [msg] = await inbox.wait(1)
    assert msg == InboundMessage(
        platform="whatsapp", account=ME, chat_id=DM, message_id=msg_id, text="hi crew", sender_id=DM,
        sender_username="", sender_name="Bob", chat_type="private", mentioned=False,
    )


async def test_group_mention_prefers_the_phone_jid_and_keeps_the_lid(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    await asyncio.to_thread(
        bridge.push_message, GROUP, "@15550001111 what's the plan?", sender=ANN_LID, sender_alt=ANN_PHONE,
        is_group=True, mentioned_me=True, push_name="Ann",
    )
    [msg] = await inbox.wait(1)
    assert (msg.chat_id, msg.chat_type, msg.mentioned) == (GROUP, "group", True)
    assert msg.sender_id == ANN_PHONE and msg.sender_username == ANN_LID
    assert msg.text == "what's the plan?", "our own @number is removed, like the bot's @name on Telegram"


async def test_reply_to_me_counts_as_a_mention_and_plain_group_chatter_does_not(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    await asyncio.to_thread(bridge.push_message, GROUP, "aye", sender=ANN_PHONE, is_group=True, reply_to_me=True)
    await asyncio.to_thread(bridge.push_message, GROUP, "lunch?", sender=ANN_PHONE, is_group=True)
    first, second = await inbox.wait(2)
    assert (first.text, first.mentioned) == ("aye", True)
    assert (second.text, second.mentioned) == ("lunch?", False)
    assert first.sender_id == ANN_PHONE and first.sender_username == ""


def test_allow_from_phone_numbers_match_the_sender_jid() -> None:
    cfg = WhatsAppConfig.model_validate({"allowFrom": ["+1 (555) 444-5555", "15552223333", ANN_LID, "*"]})
    assert cfg.allow_from == [ANN_PHONE, DM, ANN_LID, "*"]
    assert bare_jid("15550001111:7@s.whatsapp.net") == ME and bare_jid(ANN_LID) == ANN_LID


async def test_a_failing_inbox_is_retried_in_order(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    inbox.fail = 1
    await asyncio.to_thread(bridge.push_message, DM, "first")
    await asyncio.to_thread(bridge.push_message, DM, "second")
    messages = await inbox.wait(2)
    assert [m.text for m in messages] == ["first", "second"]
    assert inbox.calls == 3, "the failed hand-over was tried again, once"


# --- sending ----------------------------------------------------------------------------------------


async def test_send_delivers_the_rendered_markup_and_returns_the_acked_id(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, _ = channel
    [rendered] = CHANNELS["whatsapp"].render("**Aye**, *captain*: ~~no~~ `code`")
    message_id = await chan.send(out(rendered, key="inbox:7:0"))
    [delivered] = bridge.delivered
    assert message_id == delivered["messageId"] and message_id.startswith("3EB0")
    assert delivered == {"requestId": "inbox:7:0", "chatId": DM, "text": "*Aye*, _captain_: ~no~ `code`",
                         "messageId": message_id}


async def test_a_resend_with_the_same_key_is_not_delivered_twice(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, _ = channel
    first = await chan.send(out("once", key="inbox:3:0"))
    second = await chan.send(out("once", key="inbox:3:0"))
    assert first == second
    assert len(bridge.sends) == 2 and len(bridge.delivered) == 1


async def test_send_failures_say_what_to_do_next(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, _ = channel
    bridge.fail_next_send("WhatsApp is not connected (state: closed)")
    with pytest.raises(SendError) as info:
        await chan.send(out("a", key="k1"))
    assert info.value.retryable and not info.value.maybe_delivered
    bridge.fail_next_send("rate-overlimit")
    with pytest.raises(SendError) as info:
        await chan.send(out("a", key="k2"))
    assert info.value.retryable
    with pytest.raises(SendError, match="JID") as info:
        await chan.send(out("a", key="k3", chat="nobody"))
    assert not info.value.retryable and not info.value.maybe_delivered
    await asyncio.to_thread(bridge.set_status, "closed")
    with pytest.raises(SendError, match="not connected") as info:
        await chan.send(out("a", key="k4"))
    assert info.value.retryable
    assert bridge.delivered == []


def test_a_partly_sent_long_text_is_maybe_delivered_not_retried() -> None:
    exc = _ack_error({"type": "ack", "requestId": "r", "ok": False, "error": "Connection Closed", "partsSent": 1})
    assert exc.maybe_delivered and not exc.retryable


async def test_no_ack_in_time_is_maybe_delivered(bridge: FakeBridge) -> None:
    chan = WhatsAppChannel(config(bridge), ack_timeout=0.5)
    await chan.start(Inbox())
    try:
        bridge.delay_acks(3)
        with pytest.raises(SendError, match="no ack") as info:
            await chan.send(out("slow"))
        assert info.value.maybe_delivered and not info.value.retryable
        assert len(bridge.wait_for_sends(1)) == 1, "the frame did go out"
    finally:
        await chan.stop()


async def test_slow_acks_do_not_hold_back_inbound_messages(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    bridge.delay_acks(2)
    send = asyncio.create_task(chan.send(out("slow")))
    await asyncio.to_thread(bridge.wait_for_sends, 1)
    await asyncio.to_thread(bridge.push_message, DM, "meanwhile")
    await inbox.wait(1)
    assert not send.done(), "the message arrived while the send still waited for its ack"
    assert await send


# --- dropped connections --------------------------------------------------------------------------


async def test_drop_then_reconnect_and_receive_again(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    await asyncio.to_thread(bridge.drop_connection)
    queued = await asyncio.to_thread(bridge.push_message, DM, "while you were away")
    await asyncio.to_thread(bridge.wait_for_auth, 2)
    await asyncio.to_thread(bridge.push_message, DM, "welcome back")
    messages = await inbox.wait(2)
    assert [m.text for m in messages] == ["while you were away", "welcome back"]
    assert messages[0].message_id == queued
    assert chan.reconnects == 1 and chan.state == "running"
    assert await chan.send(out("still here"))


async def test_an_ack_queued_during_a_drop_still_answers_the_send(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, _ = channel
    bridge.delay_acks(1)
    send = asyncio.create_task(chan.send(out("across the drop", key="inbox:9:0")))
    await asyncio.to_thread(bridge.wait_for_sends, 1)
    await asyncio.to_thread(bridge.drop_connection)
    message_id = await asyncio.wait_for(send, 30)
    assert message_id == bridge.delivered[0]["messageId"]
    assert bridge.auth_count == 2


async def test_while_the_bridge_is_away_sends_fail_as_retryable(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, inbox = channel
    await asyncio.to_thread(bridge.stop)
    await until(lambda: chan.state == "reconnecting")
    with pytest.raises(SendError, match="not connected") as info:
        await chan.send(out("hello?"))
    assert info.value.retryable and not info.value.maybe_delivered
    await asyncio.to_thread(bridge.start)  # same port
    await asyncio.to_thread(bridge.wait_for_auth, 2)
    await asyncio.to_thread(bridge.push_message, DM, "back")
    assert (await inbox.wait(1))[0].text == "back"


async def reconnect_loop_ended(chan: WhatsAppChannel) -> None:
    """Wait until the adapter's read-and-reconnect task has returned: from then on nothing can reconnect."""
    [reader] = [task for task in chan._tasks if task.get_name() == "whatsapp-bridge"]
    await asyncio.wait_for(asyncio.shield(reader), 30)


async def test_logged_out_stops_reconnecting(
    channel, bridge: FakeBridge, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    chan, _ = channel
    with caplog.at_level(logging.INFO, "nanofolks.whatsapp"):
        await asyncio.to_thread(bridge.set_status, "loggedOut", statusCode=401, reason="Intentional Logout")
        await until(lambda: chan.state == "logged_out")
        assert "run `nanofolks channels login whatsapp`" in caplog.text
        await asyncio.to_thread(bridge.drop_connection)
        await reconnect_loop_ended(chan)
        assert "not reconnecting" in caplog.text
    assert bridge.auth_count == 1
    assert chan.state == "logged_out"
    with pytest.raises(SendError) as info:
        await chan.send(out("anyone?"))
    assert info.value.retryable


async def test_another_client_taking_over_stops_reconnecting(channel, bridge: FakeBridge) -> None:  # noqa: ANN001
    chan, _ = channel
    async with connect(bridge.url) as other:
        await other.send(json.dumps({"type": "auth", "token": bridge.token}))
        await other.recv()
        await reconnect_loop_ended(chan)  # no ping-pong: the adapter does not take the bridge back
        assert chan.state == "replaced" and bridge.auth_count == 2 and bridge.authenticated


# --- split and format --------------------------------------------------------------------------------


def test_markdown_becomes_whatsapp_markup() -> None:
    text = "# Plan\n**bold** _it_ *it2* ~~gone~~ [docs](https://x.org/a_b)\n```python\nx = a**2\n```"
    assert markdown_to_whatsapp(text) == (
        "*Plan*\n*bold* _it_ _it2_ ~gone~ docs (https://x.org/a_b)\n```\nx = a**2\n```"
    )


def test_split_keeps_every_converted_chunk_within_the_bridge_limit() -> None:
    paragraph = "**Arr** 🏴‍☠️ " * 60
    text = "\n\n".join([paragraph] * 12) + "\n\n```\n" + "code line\n" * 600 + "```"
    chunks = split_for_whatsapp(text)
    assert len(chunks) > 2
    assert all(utf16_len(c) <= WHATSAPP_LIMIT for c in chunks)
    assert sum(c.count("🏴‍☠️") for c in chunks) == 12 * 60, "nothing lost"
    assert all(c.count("*Arr*") == c.count("🏴‍☠️") for c in chunks), "each chunk converted"
    assert all(c.count("```") % 2 == 0 for c in chunks), "a cut code block is closed and reopened"
    assert split_for_whatsapp("short") == ["short"]


# --- `nanofolks channels login whatsapp` ---------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js on PATH")
def test_login_runs_the_bridge_with_login_and_our_auth_dir(home: Path, tmp_path: Path) -> None:
    bridge_dir = tmp_path / "bridge"
    (bridge_dir / "src").mkdir(parents=True)
    (bridge_dir / "node_modules").mkdir()
    record = tmp_path / "argv.json"
    (bridge_dir / "src" / "main.js").write_text(
        "const fs = require('fs');\n"
        f"fs.writeFileSync({json.dumps(str(record))}, JSON.stringify(process.argv.slice(2)));\n"
        "console.log('QR WOULD BE HERE');\n"
    )
    home.mkdir(parents=True)
    (home / "config.json").write_text(json.dumps({"channels": {"whatsapp": {"bridgeDir": str(bridge_dir)}}}))
    result = run_cli("channels", "login", "whatsapp", home=home)
    assert result.returncode == 0, result.stderr
    assert "QR WOULD BE HERE" in result.stdout and "WhatsApp linked" in result.stdout
    assert json.loads(record.read_text()) == ["--auth-dir", str(home / "whatsapp"), "--login"]

    (bridge_dir / "src" / "main.js").write_text("process.exit(1);\n")
    failed = run_cli("channels", "login", "whatsapp", home=home)
    assert failed.returncode == 1 and "exited with code 1" in failed.stderr

    shutil.rmtree(bridge_dir / "node_modules")
    missing = run_cli("channels", "login", "whatsapp", home=home)
    assert missing.returncode == 1 and "npm ci" in missing.stderr


def test_channels_list_shows_whatsapp_setup(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.json").write_text(json.dumps(
        {"channels": {"whatsapp": {"enabled": True, "startBridge": True, "allowFrom": ["+15552223333"]}}}))
    result = run_cli("channels", "list", "--json", home=home)
    assert result.returncode == 0, result.stderr
    whatsapp = {row["channel"]: row for row in json.loads(result.stdout)}["whatsapp"]
    assert whatsapp["enabled"] and not whatsapp["ready"] and whatsapp["allowFrom"] == 1
    assert "not linked" in whatsapp["detail"]
    (home / "whatsapp").mkdir()
    (home / "whatsapp" / "creds.json").write_text("{}")
    again = json.loads(run_cli("channels", "list", "--json", home=home).stdout)
    assert {row["channel"]: row for row in again}["whatsapp"]["ready"]


def _wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)
