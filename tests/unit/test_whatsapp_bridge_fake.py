"""The fake WhatsApp bridge speaks the bridge protocol (bridge/README.md), driven by a real `websockets` client."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fakes.whatsapp_bridge import FakeBridge

DM = "15552223333@s.whatsapp.net"
GROUP = "120363000000000001@g.us"


@pytest.fixture
def bridge():
    with FakeBridge() as fake:
        yield fake


async def recv(ws: ClientConnection, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 10) -> dict:
    while True:
        frame = await recv(ws, timeout)
        if frame["type"] == kind:
            return frame


async def authed(bridge: FakeBridge) -> ClientConnection:
    ws = await connect(bridge.url)
    await ws.send(json.dumps({"type": "auth", "token": bridge.token}))
    return ws


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


def send_frame(request_id: str, text: str = "Aye!", chat_id: str = DM) -> str:
    return json.dumps({"type": "send", "requestId": request_id, "chatId": chat_id, "text": text})


async def test_auth_answers_with_the_status_snapshot(bridge):
    assert bridge.url.startswith("ws://127.0.0.1:") and bridge.port > 0
    async with await authed(bridge) as ws:
        status = await recv(ws)
        assert status["type"] == "status" and status["state"] == "open"
        assert bridge.authenticated and bridge.auth_count == 1
    await asyncio.to_thread(_wait, lambda: not bridge.authenticated)


async def test_wrong_or_missing_token_is_closed(bridge):
    ws = await connect(bridge.url)
    await ws.send(json.dumps({"type": "auth", "token": "nope"}))
    assert await closed_with(ws) == (4003, "invalid token")
    ws = await connect(bridge.url)
    await ws.send(send_frame("r1"))
    code, reason = await closed_with(ws)
    assert code == 4001 and "auth" in reason
    assert bridge.auth_failures == 2 and bridge.auth_count == 0
    assert bridge.sends == [], "nothing is processed before auth"


async def test_no_auth_frame_times_out_with_4001():
    with FakeBridge(auth_timeout=0.2) as fake:
        ws = await connect(fake.url)
        assert await closed_with(ws) == (4001, "authentication timeout")


async def test_origin_header_is_refused_with_403(bridge):
    with pytest.raises(InvalidStatus) as info:
        await connect(bridge.url, origin="http://127.0.0.1:8000")
    assert info.value.response.status_code == 403


async def test_pushed_message_has_every_protocol_field(bridge):
    async with await authed(bridge) as ws:
        await recv_type(ws, "status")
        msg_id = await asyncio.to_thread(
            bridge.push_message,
            GROUP,
            "@bot plan?",
            sender="15554445555@s.whatsapp.net",
            is_group=True,
            mentioned_me=True,
            timestamp=1735732800,
        )
        frame = await recv_type(ws, "message")
    assert frame == {
        "type": "message",
        "id": msg_id,
        "chatId": GROUP,
        "sender": "15554445555@s.whatsapp.net",
        "senderAlt": None,
        "pushName": None,
        "text": "@bot plan?",
        "timestamp": 1735732800,
        "isGroup": True,
        "mentionedMe": True,
        "replyToMe": False,
    }


async def test_send_is_recorded_and_acked_with_a_message_id(bridge):
    async with await authed(bridge) as ws:
        await ws.send(send_frame("r1", "Aye, captain."))
        ack = await recv_type(ws, "ack")
    assert ack["requestId"] == "r1" and ack["ok"] is True and ack["messageId"]
    assert bridge.wait_for_sends(1)[0] == {
        "type": "send",
        "requestId": "r1",
        "chatId": DM,
        "text": "Aye, captain.",
    }
    assert bridge.delivered == [
        {"requestId": "r1", "chatId": DM, "text": "Aye, captain.", "messageId": ack["messageId"]}
    ]


async def test_fail_next_send_fails_that_many_then_recovers(bridge):
    bridge.fail_next_send("rate-overlimit", count=2)
    async with await authed(bridge) as ws:
        acks = []
        for rid in ("a", "b", "c"):
            await ws.send(send_frame(rid))
            acks.append(await recv_type(ws, "ack"))
    assert acks == bridge.acks
    assert [(a["requestId"], a["ok"], a.get("error")) for a in acks] == [
        ("a", False, "rate-overlimit"),
        ("b", False, "rate-overlimit"),
        ("c", True, None),
    ]
    assert [d["requestId"] for d in bridge.delivered] == ["c"]


async def test_delayed_acks_do_not_block_other_frames(bridge):
    bridge.delay_acks(0.5)
    async with await authed(bridge) as ws:
        await recv_type(ws, "status")
        started = time.monotonic()
        await ws.send(send_frame("slow"))
        await asyncio.to_thread(bridge.wait_for_sends, 1)
        await asyncio.to_thread(bridge.push_message, DM, "meanwhile")
        first = await recv(ws)
        ack = await recv_type(ws, "ack")
    assert first["type"] == "message", "the message overtook the delayed ack"
    assert ack["ok"] and time.monotonic() - started >= 0.5


async def test_repeated_request_id_is_delivered_once(bridge):
    async with await authed(bridge) as ws:
        await ws.send(send_frame("dup"))
        first = await recv_type(ws, "ack")
        await ws.send(send_frame("dup"))
        second = await recv_type(ws, "ack")
    assert first == second
    assert len(bridge.sends) == 2 and len(bridge.delivered) == 1


async def test_invalid_frames_get_errors_or_failed_acks(bridge):
    async with await authed(bridge) as ws:
        await ws.send("not json")
        assert "JSON" in (await recv_type(ws, "error"))["error"]
        await ws.send(json.dumps({"type": "bogus"}))
        assert "unknown frame type" in (await recv_type(ws, "error"))["error"]
        await ws.send(json.dumps({"type": "send", "chatId": DM, "text": "x"}))
        assert "requestId" in (await recv_type(ws, "error"))["error"]
        await ws.send(send_frame("e1", text="  "))
        assert (await recv_type(ws, "ack"))["ok"] is False
        await ws.send(send_frame("e2", chat_id="nobody"))
        assert "JID" in (await recv_type(ws, "ack"))["error"]
    assert bridge.delivered == []


async def test_drop_connection_then_reconnect_gets_queued_frames(bridge):
    ws = await authed(bridge)
    await recv_type(ws, "status")
    await asyncio.to_thread(bridge.drop_connection)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1006, "an abrupt drop sends no close frame"
    assert not bridge.authenticated
    msg_id = await asyncio.to_thread(bridge.push_message, DM, "while you were away")
    async with await authed(bridge) as again:
        assert (await recv(again))["type"] == "status"
        assert (await recv(again))["id"] == msg_id
    assert bridge.auth_count == 2


async def test_graceful_drop_closes_with_1001(bridge):
    ws = await authed(bridge)
    await recv_type(ws, "status")
    await asyncio.to_thread(bridge.drop_connection, graceful=True)
    assert (await closed_with(ws))[0] == 1001


async def test_logged_out_status_and_sends_refused(bridge):
    async with await authed(bridge) as ws:
        await recv_type(ws, "status")
        await asyncio.to_thread(bridge.set_status, "loggedOut", statusCode=401)
        assert await recv_type(ws, "status") == {"type": "status", "state": "loggedOut", "statusCode": 401}
        await ws.send(send_frame("r1"))
        ack = await recv_type(ws, "ack")
    assert ack["ok"] is False and "loggedOut" in ack["error"]
    async with await authed(bridge) as later:
        assert (await recv(later))["state"] == "loggedOut"


async def test_qr_goes_live_and_to_later_clients_until_open(bridge):
    bridge.set_status("connecting")
    async with await authed(bridge) as ws:
        await recv_type(ws, "status")
        await asyncio.to_thread(bridge.push_qr, "2@abc")
        assert (await recv_type(ws, "qr"))["qr"] == "2@abc"
    async with await authed(bridge) as later:
        assert [(await recv(later))["type"], (await recv(later))["type"]] == ["status", "qr"]
        await asyncio.to_thread(bridge.set_status, "open")
        assert (await recv(later))["state"] == "open"


async def test_newer_client_replaces_older(bridge):
    first = await authed(bridge)
    await recv_type(first, "status")
    async with await authed(bridge) as second:
        await recv_type(second, "status")
        assert (await closed_with(first))[0] == 4002


async def test_restart_binds_the_same_port():
    fake = FakeBridge(token="t")
    with fake:
        port = fake.port
    with fake:
        assert fake.port == port
        async with await authed(fake) as ws:
            assert (await recv(ws))["type"] == "status"


def test_wait_for_sends_times_out_clearly(bridge):
    with pytest.raises(TimeoutError, match="expected 1 send"):
        bridge.wait_for_sends(1, timeout=0.05)


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)
