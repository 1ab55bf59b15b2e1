"""The Discord adapter with the real discord.py against the loopback Discord (REST + gateway WebSocket)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import discord
import pytest

from nanofolks.channels.base import ChannelError, SendError
from nanofolks.channels.discord import DiscordChannel
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.channels.registry import CHANNELS
from nanofolks.config.schema import Config, DiscordConfig
from tests.fakes.discord_server import FakeDiscord

GUILD, GENERAL, LOUNGE, OTHER_GUILD, ELSEWHERE = "1", "10", "11", "2", "20"
ANN, BOB = "7", "8"
TIMEOUT = 30.0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    with FakeDiscord() as server:
        server.add_guild(GUILD, "crew hq", channels=[{"id": GENERAL, "name": "general"},
                                                     {"id": LOUNGE, "name": "lounge"}])
        server.add_guild(OTHER_GUILD, "elsewhere", channels=[{"id": ELSEWHERE, "name": "general"}])
        # The adapter retargets discord.py process-wide; monkeypatch puts the class attributes back.
        monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        yield server


class Inbox:
    """The gateway's side of on_message: collects what the adapter handed over."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.fail_next = 0

    async def __call__(self, msg: InboundMessage) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("database is locked")
        await self.messages.put(msg)

    async def next(self) -> InboundMessage:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)


def config_for(fake: FakeDiscord, **overrides: object) -> DiscordConfig:
    return DiscordConfig(enabled=True, token=fake.token, api_base=fake.api_base, gateway_url=fake.gateway_url,
                         guilds=[GUILD], **overrides)


@pytest.fixture
async def running(fake: FakeDiscord) -> AsyncIterator[tuple[DiscordChannel, Inbox]]:
    channel = DiscordChannel(config_for(fake, open_groups=[LOUNGE]), guild_ready_timeout=0.1)
    inbox = Inbox()
    await channel.start(inbox)
    try:
        yield channel, inbox
    finally:
        await channel.stop()


def out(channel: DiscordChannel, chat_id: str, text: str, reply_to: str | None = None) -> OutboundMessage:
    return OutboundMessage(platform="discord", account=channel.account, chat_id=chat_id, text=text, key="k",
                           reply_to=reply_to)


async def test_start_signs_in_with_the_content_intent(fake: FakeDiscord, running) -> None:
    channel, _ = running
    assert channel.account == fake.bot_id and channel.username == "crewbot" and channel.state == "running"
    assert fake.api_base == discord.http.Route.BASE
    assert fake.identify_payloads[0]["intents"] & (1 << 15)  # MESSAGE_CONTENT requested
    await channel.stop()
    assert channel.state == "stopped"
    await fake.wait_until_async(lambda: fake.connected_sessions == 0, TIMEOUT)


async def test_dm_becomes_an_inbound_message(fake: FakeDiscord, running) -> None:
    channel, inbox = running
    message_id = fake.push_message("555", "  hello   crew ", author_id=ANN, author_name="ann")
    msg = await inbox.next()
    assert msg == InboundMessage(platform="discord", account=fake.bot_id, chat_id="555", message_id=message_id,
                                 text="hello crew", sender_id=ANN, sender_username="ann", sender_name="ann",
                                 chat_type="private", mentioned=False)


async def test_guild_messages_carry_whether_they_are_for_the_crew(fake: FakeDiscord, running) -> None:
    """The adapter marks mentions, replies to the bot and open channels; the shared access policy then
    drops the unmarked ones (tested end to end in tests/integration/test_gateway_discord.py)."""
    channel, inbox = running
    chatter = fake.push_message(GENERAL, "humans chatting", author_id=ANN, author_name="ann", guild_id=GUILD)
    msg = await inbox.next()
    assert (msg.message_id, msg.chat_type, msg.mentioned) == (chatter, "group", False)

    asked = fake.push_message(GENERAL, "fix the   sails", author_id=ANN, author_name="ann", guild_id=GUILD,
                              mentions_bot=True)
    msg = await inbox.next()
    assert (msg.message_id, msg.mentioned, msg.text) == (asked, True, "fix the sails")  # our mention removed

    reply_id = await channel.send(out(channel, GENERAL, "aye", reply_to=asked))
    replied = fake.push_message(GENERAL, "and the mast?", author_id=ANN, author_name="ann", guild_id=GUILD,
                                reply_to_message_id=reply_id)
    msg = await inbox.next()
    assert (msg.message_id, msg.mentioned) == (replied, True)

    in_lounge = fake.push_message(LOUNGE, "no mention needed here", author_id=ANN, author_name="ann",
                                  guild_id=GUILD)
    msg = await inbox.next()
    assert (msg.message_id, msg.chat_id, msg.mentioned) == (in_lounge, LOUNGE, True)


async def test_own_and_other_bots_messages_are_ignored(fake: FakeDiscord, running) -> None:
    channel, inbox = running
    await channel.send(out(channel, GENERAL, "our own words"))  # echoed back to us as MESSAGE_CREATE
    fake.push_message(GENERAL, "beep", author_id="900", author_name="otherbot", guild_id=GUILD, is_bot=True,
                      mentions_bot=True)
    human = fake.push_message(GENERAL, "a human", author_id=ANN, author_name="ann", guild_id=GUILD)
    assert (await inbox.next()).message_id == human
    assert inbox.messages.empty()


async def test_other_bots_are_heard_with_allow_bots_but_never_ourselves(fake: FakeDiscord) -> None:
    channel = DiscordChannel(config_for(fake, allow_bots=True), guild_ready_timeout=0.1)
    inbox = Inbox()
    await channel.start(inbox)
    try:
        await channel.send(out(channel, GENERAL, "our own words"))
        beep = fake.push_message(GENERAL, "beep", author_id="900", author_name="otherbot", guild_id=GUILD,
                                 is_bot=True, mentions_bot=True)
        msg = await inbox.next()
        assert (msg.message_id, msg.sender_id, msg.mentioned) == (beep, "900", True)
        human = fake.push_message("555", "after the bot", author_id=ANN, author_name="ann")
        assert (await inbox.next()).message_id == human  # our own echo never came through
    finally:
        await channel.stop()


async def test_guilds_outside_the_list_are_ignored(fake: FakeDiscord, running) -> None:
    _, inbox = running
    fake.push_message(ELSEWHERE, "hello?", author_id=ANN, author_name="ann", guild_id=OTHER_GUILD,
                      mentions_bot=True)
    dm = fake.push_message("555", "dm", author_id=ANN, author_name="ann")
    assert (await inbox.next()).message_id == dm
    assert inbox.messages.empty()


async def test_threads_are_their_own_chat_and_mentions_of_others_read_as_names(fake: FakeDiscord, running) -> None:
    channel, inbox = running
    fake.push_message("556", "hi", author_id=BOB, author_name="bob")  # bob becomes a known user
    await inbox.next()
    thread = fake.add_thread(GUILD, GENERAL, "plans")
    asked = fake.push_message(thread, f"ask <@{BOB}> about it", author_id=ANN, author_name="ann", guild_id=GUILD,
                              mentions_bot=True)
    msg = await inbox.next()
    assert (msg.chat_id, msg.chat_type, msg.mentioned, msg.message_id) == (thread, "thread", True, asked)
    assert msg.text == f"ask <@{BOB}> about it"  # the fake lists only the bot in `mentions`: kept as written

    await channel.send(out(channel, thread, "on it", reply_to=asked))
    [sent] = await fake.wait_for_sent_async(1)
    assert sent["channel_id"] == thread and sent["message_reference"]["message_id"] == asked


async def test_send_returns_the_message_id_and_replies_reference(fake: FakeDiscord, running) -> None:
    channel, inbox = running
    fake.push_message("555", "opens the DM channel", author_id=ANN, author_name="ann")
    asked = fake.push_message(GENERAL, "q", author_id=ANN, author_name="ann", guild_id=GUILD, mentions_bot=True)
    await inbox.next()
    await inbox.next()
    first = await channel.send(out(channel, GENERAL, "**bold** _stays_ Markdown @everyone", reply_to=asked))
    second = await channel.send(out(channel, "555", "a DM answer"))  # a chat discord.py has not cached
    sent = await fake.wait_for_sent_async(2)
    assert [s["id"] for s in sent] == [first, second]
    assert sent[0]["content"] == "**bold** _stays_ Markdown @everyone"  # Discord renders Markdown itself
    assert sent[0]["message_reference"]["message_id"] == asked
    assert sent[1]["channel_id"] == "555" and sent[1]["message_reference"] is None
    await channel.typing(GENERAL)
    assert fake.typing_calls == [GENERAL]
    await channel.typing("999")  # best effort: an unknown channel's 404 is swallowed


async def test_long_reply_splits_under_2000_fence_aware(fake: FakeDiscord, running) -> None:
    channel, _ = running
    code = "\n".join(f"line_{i:03d} = compute({i})" for i in range(150))
    prose = "\n\n".join(f"Paragraph {i}: " + "the crew sails on. " * 10 for i in range(8))
    reply = f"{prose}\n\n```python\n{code}\n```\n\nThe end."
    chunks = CHANNELS["discord"].render(reply)
    assert len(chunks) >= 3 and all(len(c) <= 2000 for c in chunks)
    for chunk in chunks:
        assert chunk.count("```") % 2 == 0  # a block cut in two is closed and reopened
    for chunk in chunks:
        await channel.send(out(channel, GENERAL, chunk))
    text = "\n".join(s["content"] for s in await fake.wait_for_sent_async(len(chunks)))
    assert all(text.count(f"line_{i:03d} = compute({i})") == 1 for i in range(150))
    assert text.endswith("The end.")


async def test_rate_limits(fake: FakeDiscord, running) -> None:
    channel, _ = running
    fake.fail_next("POST /channels/*/messages", status=429, retry_after=0.2)
    assert await channel.send(out(channel, GENERAL, "short wait"))  # discord.py waits a short 429 out itself

    fake.fail_next("POST /channels/*/messages", status=429, retry_after=45)
    with pytest.raises(SendError) as long_wait:
        await channel.send(out(channel, GENERAL, "long wait"))
    assert long_wait.value.retryable and long_wait.value.retry_after == 45
    assert not long_wait.value.maybe_delivered

    fake.fail_next("POST /channels/*/messages", status=429, retry_after=0.05, count=5)
    with pytest.raises(SendError) as exhausted:  # discord.py tried five times, then gave up
        await channel.send(out(channel, GENERAL, "again and again"))
    assert exhausted.value.retryable and exhausted.value.retry_after == pytest.approx(0.05)
    assert [s["content"] for s in fake.sent] == ["short wait"]


async def test_send_errors_are_sorted_for_the_outbox(fake: FakeDiscord, running) -> None:
    channel, _ = running
    fake.fail_next("POST /channels/*/messages", status=503)
    with pytest.raises(SendError) as server_error:
        await channel.send(out(channel, GENERAL, "x"))
    assert server_error.value.retryable and not server_error.value.maybe_delivered
    for chat_id in ("999", "not-a-number"):  # an unknown channel (404), a malformed id
        with pytest.raises(SendError) as refused:
            await channel.send(out(channel, chat_id, "x"))
        assert not refused.value.retryable and not refused.value.maybe_delivered
    fake.stop()
    errors: list[SendError] = []
    while len(errors) < 5 and not (errors and errors[-1].retryable):
        with pytest.raises(SendError) as failed:
            await channel.send(out(channel, GENERAL, "x"))
        errors.append(failed.value)
    # A kept-alive connection the server closed: the request went out, no answer came (maybe delivered).
    assert all(e.maybe_delivered and not e.retryable for e in errors[:-1])
    # Then nothing listens: the connection is refused, the request never went out.
    assert errors[-1].retryable and not errors[-1].maybe_delivered


async def test_gateway_drop_is_resumed_and_missed_messages_replayed(fake: FakeDiscord, running) -> None:
    channel, inbox = running
    fake.drop_gateway()
    missed = fake.push_message("555", "while you were out", author_id=ANN, author_name="ann")
    assert (await inbox.next()).message_id == missed
    await fake.wait_until_async(lambda: channel.state == "running" and channel.reconnects == 1, TIMEOUT)
    assert fake.resume_count == 1 and fake.identify_count == 1

    fake.drop_gateway(resumable=False)  # the session is gone: discord.py identifies again
    await fake.wait_until_async(lambda: fake.identify_count == 2 and channel.reconnects == 2, TIMEOUT)
    after = fake.push_message("555", "fresh session", author_id=ANN, author_name="ann")
    assert (await inbox.next()).message_id == after
    assert channel.state == "running"


async def test_a_failed_store_is_retried(fake: FakeDiscord, running) -> None:
    _, inbox = running
    inbox.fail_next = 1
    first = fake.push_message("555", "first", author_id=ANN, author_name="ann")
    second = fake.push_message("555", "second", author_id=ANN, author_name="ann")
    assert [(await inbox.next()).message_id for _ in range(2)] == [first, second]  # still in order


async def test_start_failures_are_one_clear_error(fake: FakeDiscord) -> None:
    with pytest.raises(ChannelError, match="token is empty"):
        DiscordChannel(DiscordConfig(enabled=True))
    bad = DiscordChannel(config_for(fake).model_copy(update={"token": "wrong-token"}))
    with pytest.raises(ChannelError, match="rejected the bot token"):
        await bad.start(Inbox())
    assert fake.identify_count == 0

    nowhere = config_for(fake).model_copy(update={"gateway_url": "ws://127.0.0.1:9/gateway"})
    silent = DiscordChannel(nowhere, start_timeout=5.0)
    with pytest.raises(ChannelError, match=r"discord gateway at ws://127\.0\.0\.1:9/gateway .* within 5s"):
        await silent.start(Inbox())
    assert silent.state == "stopped"


def test_config_accepts_numeric_ids_and_open_channels() -> None:
    config = Config.model_validate({"channels": {"discord": {
        "enabled": True, "token": "t", "allowFrom": [123456789012345678, "ann"], "guilds": [1],
        "openChannels": ["10"], "allowBots": True}}})
    discord_config = config.channels.discord
    assert discord_config.allow_from == ["123456789012345678", "ann"] and discord_config.guilds == ["1"]
    assert discord_config.open_groups == ["10"] and discord_config.allow_bots
    assert discord_config.api_base == "https://discord.com/api/v10"
    assert config.model_dump(by_alias=True)["channels"]["discord"]["openChannels"] == ["10"]


async def test_a_revoked_token_ends_the_connection_with_an_error_state(fake: FakeDiscord, running,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    channel, _ = running
    fake.token = "revoked"  # the owner reset the token: the next IDENTIFY is refused (close 4004)
    fake.drop_gateway(resumable=False)
    await fake.wait_until_async(lambda: channel.state == "error", TIMEOUT)
    assert "ended for good" in caplog.text


async def test_first_connection_is_retried_until_the_gateway_answers(fake: FakeDiscord,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a free port, closed again: nothing listens there yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = config_for(fake).model_copy(update={"gateway_url": f"ws://127.0.0.1:{port}/gateway"})
    channel = DiscordChannel(config, guild_ready_timeout=0.1)
    starting = asyncio.create_task(channel.start(Inbox()))
    try:
        await fake.wait_until_async(lambda: "gateway connection failed" in caplog.text, TIMEOUT)
        with FakeDiscord(port=port) as late_gateway:  # same bot and token, now listening
            await asyncio.wait_for(starting, TIMEOUT)
            assert channel.state == "running" and late_gateway.identify_count == 1
    finally:
        await channel.stop()
