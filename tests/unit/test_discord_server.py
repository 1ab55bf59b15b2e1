"""The loopback Discord speaks the protocol the real discord.py expects (REST, gateway, resume, 429s)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import discord
import pytest
import yarl

from tests.fakes.discord_server import FakeDiscord

GUILD, GENERAL = "1", "10"
TIMEOUT = 30.0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    with FakeDiscord() as server:
        server.add_guild(GUILD, "crew hq", channels=[{"id": GENERAL, "name": "general"}])
        # The only way discord.py lets a caller choose the hosts: both are class attributes it reads at
        # request / connect time. monkeypatch restores them after the test.
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
        yield server
    assert not any(t.name == "FakeDiscord" for t in threading.enumerate())


class Bot(discord.Client):
    def __init__(self, *, content_intent: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = content_intent
        super().__init__(intents=intents, guild_ready_timeout=0.2)
        self.inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.resumed = asyncio.Event()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def on_message(self, message: discord.Message) -> None:
        if message.author != self.user:
            await self.inbox.put(message)

    async def next_message(self) -> discord.Message:
        return await asyncio.wait_for(self.inbox.get(), TIMEOUT)


@asynccontextmanager
async def running(fake: FakeDiscord, *, content_intent: bool = True) -> AsyncIterator[Bot]:
    bot = Bot(content_intent=content_intent)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        ready = asyncio.create_task(bot.wait_until_ready())
        await asyncio.wait({task, ready}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises the login/connect error
        assert bot.is_ready(), "discord.py never became ready"
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, TIMEOUT)


async def test_login_ready_and_guilds(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        assert bot.user is not None and str(bot.user.id) == fake.bot_id and bot.user.name == "crewbot"
        channel = bot.get_channel(int(GENERAL))
        assert isinstance(channel, discord.TextChannel) and channel.guild.name == "crew hq"
        assert fake.identify_count == 1 and fake.connected_sessions == 1
        assert fake.identify_payloads[0]["intents"] & (1 << 15), "message_content intent requested"
        assert fake.heartbeat_count >= 1  # discord.py heartbeats right after HELLO and gets ACKs
        assert ("GET", "/users/@me", 200) in fake.requests
        synced = await discord.app_commands.CommandTree(bot).sync()
        assert synced == [] and ("PUT", f"/applications/{fake.bot_id}/commands", 200) in fake.requests
    await fake.wait_until_async(lambda: fake.connected_sessions == 0, TIMEOUT)  # the server saw the close


async def test_guild_message_in_reply_out_typing(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        message_id = fake.push_message(GENERAL, "ahoy", author_id="7", author_name="ann", mentions_bot=True)
        message = await bot.next_message()
        assert str(message.id) == message_id and message.author.name == "ann"
        assert message.content == f"<@{fake.bot_id}> ahoy" and bot.user.mentioned_in(message)
        assert message.guild is not None and message.channel.id == int(GENERAL)

        async with message.channel.typing():
            await message.reply("aye")
        [sent] = await fake.wait_for_sent_async(1)
        assert sent["channel_id"] == GENERAL and sent["content"] == "aye"
        assert sent["message_reference"]["message_id"] == message_id
        assert fake.typing_calls == [GENERAL]

        # a reply to the bot's message carries the referenced message, so the adapter can tell it's for us
        fake.push_message(GENERAL, "thanks", author_id="7", author_name="ann", reply_to_message_id=sent["id"])
        reply = await bot.next_message()
        assert reply.reference is not None and reply.reference.resolved.author == bot.user


async def test_dm_and_create_dm(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        fake.push_message("555", "psst", author_id="8", author_name="bob")
        message = await bot.next_message()
        assert isinstance(message.channel, discord.DMChannel) and message.guild is None
        assert message.content == "psst"
        await message.channel.send("hi bob")
        user = await bot.fetch_user(8)
        dm = await user.create_dm()
        assert dm.id == 555  # the existing DM channel with bob
        await dm.send("again")
        assert [s["content"] for s in await fake.wait_for_sent_async(2)] == ["hi bob", "again"]


async def test_without_message_content_intent_guild_text_is_hidden(fake: FakeDiscord) -> None:
    async with running(fake, content_intent=False) as bot:
        fake.push_message(GENERAL, "secret", author_id="7", author_name="ann")
        assert (await bot.next_message()).content == ""
        fake.push_message(GENERAL, "visible", author_id="7", author_name="ann", mentions_bot=True)
        assert (await bot.next_message()).content.endswith("visible")
        fake.push_message("556", "dm text", author_id="7", author_name="ann")
        assert (await bot.next_message()).content == "dm text"


async def test_threads(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        thread_id = fake.add_thread(GUILD, GENERAL, "plans")
        fake.push_message(thread_id, "in thread", author_id="7", author_name="ann")
        message = await bot.next_message()
        assert isinstance(message.channel, discord.Thread) and message.channel.parent_id == int(GENERAL)
        await message.channel.send("thread reply")
        assert (await fake.wait_for_sent_async(1))[0]["channel_id"] == thread_id


async def test_too_long_and_unknown_channel_are_rejected(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        channel = bot.get_channel(int(GENERAL))
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.status == 400 and too_long.value.code == 50035
        await channel.send("x" * 2000)
        with pytest.raises(discord.NotFound) as unknown:
            await bot.http.send_message(999, params=discord.http.handle_message_parameters(content="hi"))
        assert unknown.value.code == 10003
        assert [len(s["content"]) for s in fake.sent] == [2000]


async def test_rate_limit_is_retried_by_discord_py(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        fake.fail_next("POST /channels/*/messages", status=429, retry_after=0.2)
        await bot.get_channel(int(GENERAL)).send("patient")
        posts = [status for method, path, status in fake.requests if path == f"/channels/{GENERAL}/messages"]
        assert posts == [429, 200]
        assert [s["content"] for s in fake.sent] == ["patient"]


async def test_bad_token_fails_login(fake: FakeDiscord) -> None:
    bot = Bot()
    try:
        with pytest.raises(discord.LoginFailure):
            await bot.login("wrong-token")
    finally:
        await bot.close()
    assert fake.identify_count == 0


async def test_resume_replays_missed_events(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        fake.drop_gateway()
        missed_id = fake.push_message(GENERAL, "while you were out", author_id="7", author_name="ann")
        message = await bot.next_message()
        assert str(message.id) == missed_id
        await asyncio.wait_for(bot.resumed.wait(), TIMEOUT)
        assert fake.resume_count == 1 and fake.identify_count == 1

        fake.push_message(GENERAL, "after resume", author_id="7", author_name="ann")
        assert (await bot.next_message()).content == "after resume"


async def test_invalid_session_makes_discord_py_identify_again(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        fake.drop_gateway(resumable=False)
        await fake.wait_until_async(lambda: fake.identify_count == 2 and fake.connected_sessions == 1, TIMEOUT)
        assert fake.invalid_session_count == 1 and fake.resume_count == 0
        fake.push_message(GENERAL, "fresh session", author_id="7", author_name="ann")
        assert (await bot.next_message()).content == "fresh session"


async def test_raw_gateway_zlib_stream_and_plain_text(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            frame = await ws.receive(timeout=TIMEOUT)
            assert frame.type is aiohttp.WSMsgType.BINARY and frame.data.endswith(b"\x00\x00\xff\xff")
            hello = json.loads(zlib.decompressobj().decompress(frame.data))
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == fake.heartbeat_interval_ms
        async with session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            assert (await ws.receive_json(timeout=TIMEOUT))["op"] == 10
            await ws.send_json({"op": 2, "d": {"token": "nope", "intents": 0}})
            closed = await ws.receive(timeout=TIMEOUT)
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4004
        async with session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            await ws.receive_json(timeout=TIMEOUT)
            await ws.send_json({"op": 6, "d": {"token": fake.token, "session_id": "unknown", "seq": 3}})
            assert await ws.receive_json(timeout=TIMEOUT) == {"op": 9, "d": False, "s": None, "t": None}
            await ws.send_json({"op": 99, "d": None})
            assert (await ws.receive(timeout=TIMEOUT)).data == 4001


async def test_gateway_closes_a_connection_that_stops_heartbeating() -> None:
    with FakeDiscord(heartbeat_interval_ms=100) as fake:
        async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
            assert (await ws.receive_json(timeout=TIMEOUT))["op"] == 10
            closed = await ws.receive(timeout=TIMEOUT)
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4009


async def test_raw_rest_auth_and_gateway_bot(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/gateway/bot", headers={"Authorization": "Bot nope"}) as resp:
            assert resp.status == 401 and (await resp.json())["message"] == "401: Unauthorized"
        headers = {"Authorization": f"Bot {fake.token}"}
        async with session.get(f"{fake.api_base}/gateway/bot", headers=headers) as resp:
            body = await resp.json()
            assert resp.headers["Content-Type"] == "application/json"
            assert body["url"] == fake.gateway_url and body["shards"] == 1
        fake.fail_next("GET /gateway/bot", retry_after=2.5)
        async with session.get(f"{fake.api_base}/gateway/bot", headers=headers) as resp:
            assert resp.status == 429 and resp.headers["Via"] and resp.headers["X-RateLimit-Remaining"] == "0"
            assert await resp.json() == {"message": "You are being rate limited.", "retry_after": 2.5,
                                         "global": False, "code": 0}
        async with session.post(f"{fake.api_base}/channels/{GENERAL}/messages", headers=headers,
                                data=b"{not json") as resp:
            assert resp.status == 400
    assert fake.sent == []


def test_push_to_unknown_guild_channel_is_an_error(fake: FakeDiscord) -> None:
    with pytest.raises(ValueError, match="add_guild"):
        fake.push_message("404", "hi", author_id="7", author_name="ann", guild_id=GUILD)
    with pytest.raises(ValueError, match="unknown message"):
        fake.push_message(GENERAL, "re", author_id="7", author_name="ann", reply_to_message_id="999")
    with pytest.raises(ValueError, match="count"):
        fake.fail_next("POST", count=0)


def test_sync_wait_for_sent_serves_subprocess_style_tests(fake: FakeDiscord) -> None:
    with pytest.raises(TimeoutError, match="1 sent message"):
        fake.wait_for_sent(1, timeout=0.1)
    request = urllib.request.Request(
        f"{fake.api_base}/channels/{GENERAL}/messages", data=json.dumps({"content": "from afar"}).encode(),
        headers={"Authorization": f"Bot {fake.token}", "Content-Type": "application/json"}, method="POST")
    sender = threading.Thread(target=lambda: urllib.request.urlopen(request, timeout=TIMEOUT).read())
    sender.start()
    assert fake.wait_for_sent(1)[0]["content"] == "from afar"
    sender.join(TIMEOUT)
