"""The loopback Slack speaks the Web API and Socket Mode the way the real slack-sdk / slack-bolt expect."""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import FakeSlack

TIMEOUT = 30.0


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server
    assert not any(t.name == "FakeSlack" for t in threading.enumerate())


def web_client(fake: FakeSlack, token: str | None = None, **kwargs) -> AsyncWebClient:
    return AsyncWebClient(token=token or fake.bot_token, base_url=fake.api_base, **kwargs)


@asynccontextmanager
async def bolt_app(fake: FakeSlack) -> AsyncIterator[tuple[AsyncApp, asyncio.Queue]]:
    """A bolt app on Socket Mode that queues every message/app_mention it is handed and replies in thread."""
    client = web_client(fake)
    app = AsyncApp(client=client)
    seen: asyncio.Queue[dict] = asyncio.Queue()

    @app.event("message")
    async def on_message(event: dict, say) -> None:
        await seen.put(event)
        await say(text=f"echo: {event['text']}", thread_ts=event.get("thread_ts") or event["ts"])

    @app.event("app_mention")
    async def on_mention(event: dict) -> None:
        await seen.put(event)

    handler = AsyncSocketModeHandler(app, fake.app_token, web_client=client, ping_interval=1)
    await asyncio.wait_for(handler.connect_async(), TIMEOUT)
    try:
        yield app, seen
    finally:
        await asyncio.wait_for(handler.close_async(), TIMEOUT)


async def next_event(queue: asyncio.Queue) -> dict:
    return await asyncio.wait_for(queue.get(), TIMEOUT)


async def test_bolt_receives_acks_and_replies_in_thread(fake: FakeSlack) -> None:
    async with bolt_app(fake) as (_, seen):
        ts = fake.push_message("D1", "hello", user="U1")
        event = await next_event(seen)
        assert (event["type"], event["text"], event["ts"], event["channel_type"]) == ("message", "hello", ts, "im")
        [posted] = await fake.wait_for_posted_async(1)
        assert posted == {**posted, "channel": "D1", "text": "echo: hello", "thread_ts": ts}
        # the user's envelope and the echo of the bot's own reply are both acked; bolt drops its own message
        await fake.wait_until_async(lambda: len(fake.acks) == 2 and fake.unacked == 0, TIMEOUT)
        assert fake.acks == [d["envelope_id"] for d in fake.delivered]
        assert fake.delivered[1]["payload"]["event"]["bot_id"] == fake.bot_id
        assert seen.empty()
    assert fake.connections_opened == 1 and fake.sockets_accepted == 1
    assert ("POST", "auth.test", 200) in fake.requests  # bolt learned its own ids


async def test_mention_sends_message_and_app_mention_for_the_same_ts(fake: FakeSlack) -> None:
    async with bolt_app(fake) as (_, seen):
        ts = fake.push_message("C1", "plan?", user="U1", channel_type="channel", mention=True)
        events = [await next_event(seen), await next_event(seen)]
        assert sorted(e["type"] for e in events) == ["app_mention", "message"]
        assert {e["ts"] for e in events} == {ts}
        assert all(e["text"] == f"<@{fake.bot_user_id}> plan?" for e in events)
        envelope_types = [d["payload"]["event"]["type"] for d in fake.delivered[:2]]
        assert envelope_types == ["message", "app_mention"]


async def test_thread_and_bot_fields_are_passed_through(fake: FakeSlack) -> None:
    async with bolt_app(fake) as (_, seen):
        fake.push_message("C2", "in thread", user="U1", channel_type="channel", thread_ts="1.000001")
        assert (await next_event(seen))["thread_ts"] == "1.000001"
        assert (await fake.wait_for_posted_async(1))[0]["thread_ts"] == "1.000001"
        fake.push_message("C2", "beep", user="U9", channel_type="channel", bot_id="BOTHER", subtype="bot_message")
        event = await next_event(seen)
        assert (event["bot_id"], event["subtype"]) == ("BOTHER", "bot_message")


async def test_disconnect_and_drop_make_bolt_reconnect(fake: FakeSlack) -> None:
    async with bolt_app(fake) as (_, seen):
        fake.send_disconnect()
        await fake.wait_until_async(lambda: fake.connections_opened == 2 and fake.open_sockets == 1, TIMEOUT)
        fake.push_message("D1", "after refresh", user="U1")
        assert (await next_event(seen))["text"] == "after refresh"

        fake.drop_socket()
        await fake.wait_until_async(lambda: fake.connections_opened == 3, TIMEOUT)
        fake.push_message("D1", "after drop", user="U1")
        assert (await next_event(seen))["text"] == "after drop"


async def test_unacked_envelope_is_redelivered_with_retry_attempt() -> None:
    with FakeSlack(redeliver_after=0.3) as fake:
        client = SocketModeClient(app_token=fake.app_token, web_client=web_client(fake))
        attempts: list[int] = []

        async def listener(socket_client: SocketModeClient, request: SocketModeRequest) -> None:
            attempts.append(request.retry_attempt)
            if request.retry_attempt:  # ignore the first delivery, ack the retry
                await socket_client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

        client.socket_mode_request_listeners.append(listener)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        try:
            envelope_id = fake.push_event({"type": "reaction_added", "user": "U1", "reaction": "tada"})
            await fake.wait_until_async(lambda: fake.acks == [envelope_id], TIMEOUT)
        finally:
            await client.close()
        assert attempts == [0, 1]
        assert [d["retry_reason"] for d in fake.delivered] == ["", "timeout"]
        assert fake.unacked == 0 and fake.expired == []


async def test_never_acked_envelope_expires_and_queued_ones_wait_for_a_socket() -> None:
    with FakeSlack(redeliver_after=0.1, max_retries=2) as fake:
        envelope_id = fake.push_event({"type": "message", "text": "queued"})
        assert fake.delivered == []  # no socket yet: it waits
        url = (await web_client(fake).apps_connections_open(app_token=fake.app_token))["url"]
        assert url.startswith(f"ws://127.0.0.1:{fake.port}/socket?ticket=")
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=TIMEOUT))["type"] == "hello"
            assert (await ws.receive_json(timeout=TIMEOUT))["envelope_id"] == envelope_id
            await fake.wait_until_async(lambda: len(fake.expired) == 1, TIMEOUT)
        assert [d["retry_attempt"] for d in fake.delivered] == [0, 1, 2]
        assert fake.acks == [] and fake.unacked == 0


async def test_socket_rejects_unknown_ticket(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"ws://127.0.0.1:{fake.port}/socket?ticket=forged")
    assert refused.value.status == 401 and fake.sockets_accepted == 0


async def test_web_api_methods_and_errors(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.add_channel("C1", "general")
    fake.add_user("U1", "ann")
    assert (await client.auth_test())["user_id"] == fake.bot_user_id
    posted = await client.chat_postMessage(channel="C1", text="*hi*", mrkdwn=True)
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="*hi* again")
    assert updated["text"] == "*hi* again" and fake.updated == [{"channel": "C1", "ts": posted["ts"],
                                                                 "text": "*hi* again"}]
    assert fake.posted[0]["mrkdwn"] is True and fake.posted[0]["text"] == "*hi*"
    assert (await client.conversations_info(channel="C1"))["channel"]["name"] == "general"
    assert (await client.users_info(user="U1"))["user"]["name"] == "ann"
    # form-encoded parameters work too (slack-sdk sends some methods that way)
    form = await client.api_call("chat.postMessage", data={"channel": "C1", "text": "form"})
    assert form["ok"] and fake.posted[-1]["text"] == "form"

    async def error_of(call) -> str:
        with pytest.raises(SlackApiError) as failed:
            await call
        return failed.value.response["error"]

    assert await error_of(client.chat_postMessage(channel="C1", text="x" * 40001)) == "msg_too_long"
    assert await error_of(client.chat_postMessage(channel="C404", text="hi")) == "channel_not_found"
    assert await error_of(client.chat_update(channel="C1", ts="1.1", text="hi")) == "message_not_found"
    assert await error_of(client.users_info(user="U404")) == "user_not_found"
    assert await error_of(web_client(fake, "xoxb-wrong").auth_test()) == "invalid_auth"
    assert await error_of(client.apps_connections_open(app_token=fake.bot_token)) == "not_allowed_token_type"
    assert len(fake.posted) == 2 and fake.connections_opened == 0
    with pytest.raises(ValueError, match="channel_type"):
        fake.push_message("C1", "hi", user="U1", channel_type="dm")


async def test_rate_limit_429_with_retry_after(fake: FakeSlack) -> None:
    fake.add_channel("C1", "general")
    fake.fail_next("chat.postMessage", retry_after=1)
    with pytest.raises(SlackApiError) as limited:
        await web_client(fake).chat_postMessage(channel="C1", text="too soon")
    assert limited.value.response.status_code == 429 and limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers["Retry-After"] == "1"

    fake.fail_next("chat.*", retry_after=1)
    patient = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    await patient.chat_postMessage(channel="C1", text="patient")
    statuses = [status for _, method, status in fake.requests if method == "chat.postMessage"]
    assert statuses == [429, 429, 200] and [p["text"] for p in fake.posted] == ["patient"]


def test_sync_wait_for_posted_serves_subprocess_style_tests(fake: FakeSlack) -> None:
    fake.add_channel("C1", "general")
    with pytest.raises(TimeoutError, match="1 posted message"):
        fake.wait_for_posted(1, timeout=0.1)
    request = urllib.request.Request(
        f"{fake.api_base}chat.postMessage", data=urllib.parse.urlencode({"channel": "C1", "text": "hi"}).encode(),
        headers={"Authorization": f"Bearer {fake.bot_token}"}, method="POST")
    sender = threading.Thread(target=lambda: urllib.request.urlopen(request, timeout=TIMEOUT).read())
    sender.start()
    assert fake.wait_for_posted(1)[0]["text"] == "hi"
    sender.join(TIMEOUT)
