"""The Slack adapter with the real slack-bolt / slack-sdk against the loopback Slack (Web API + Socket Mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from nanofolks.channels.base import ChannelError, SendError
from nanofolks.channels.formatting import SLACK_LIMIT, split_for_slack
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.channels.registry import CHANNELS
from nanofolks.channels.slack import SlackChannel
from nanofolks.config.schema import SlackConfig
from tests.fakes.slack_server import FakeSlack

TIMEOUT = 30.0


class Inbox:
    """The gateway's side of `on_message`: records every message; can be told to fail or to hold."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.fail = 0  # raise on the next N calls
        self.gate: asyncio.Event | None = None  # when set: wait for it before storing

    async def __call__(self, msg: InboundMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("database is locked")
        self.messages.append(msg)


def config(fake: FakeSlack, **extra: object) -> SlackConfig:
    return SlackConfig(enabled=True, bot_token=fake.bot_token, app_token=fake.app_token, api_base=fake.api_base,
                       **extra)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(redeliver_after=1.0) as server:
        server.add_user("U1", "ann")
        yield server


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def slack(fake: FakeSlack, inbox: Inbox) -> AsyncIterator[SlackChannel]:
    channel = SlackChannel(config(fake, open_groups=["COPEN"]), ping_interval=1)
    await asyncio.wait_for(channel.start(inbox), TIMEOUT)
    yield channel
    await asyncio.wait_for(channel.stop(), TIMEOUT)


async def received(fake: FakeSlack, inbox: Inbox, n: int) -> list[InboundMessage]:
    await fake.wait_until_async(lambda: len(inbox.messages) >= n, TIMEOUT, f"{n} message(s) handed over")
    return inbox.messages


async def settled(fake: FakeSlack, inbox: Inbox) -> None:
    """A DM after the others, waited for: every envelope before it has been handled and acked."""
    before = len(inbox.messages)
    fake.push_message("DBAR", "barrier", user="U1")
    await fake.wait_until_async(lambda: any(m.text == "barrier" for m in inbox.messages[before:]), TIMEOUT)
    await fake.wait_until_async(lambda: fake.unacked == 0, TIMEOUT, "every envelope acked")
    del inbox.messages[-1]


def outbound(chat_id: str, text: str, reply_to: str | None = None) -> OutboundMessage:
    return OutboundMessage(platform="slack", account="UBOT", chat_id=chat_id, text=text, key="k1", reply_to=reply_to)


async def test_start_identifies_and_hands_over_a_dm(fake: FakeSlack, inbox: Inbox, slack: SlackChannel) -> None:
    assert (slack.account, slack.username, slack.state) == ("UBOT", "crewbot", "running")
    await fake.wait_until_async(lambda: fake.open_sockets == 1, TIMEOUT)
    ts = fake.push_message("D1", "hello crew", user="U1")
    [msg] = await received(fake, inbox, 1)
    assert msg == InboundMessage(platform="slack", account="UBOT", chat_id="D1", message_id=ts, text="hello crew",
                                 sender_id="U1", sender_username="", sender_name="ann", chat_type="private",
                                 mentioned=False)
    await fake.wait_until_async(lambda: fake.unacked == 0, TIMEOUT)
    assert fake.acks == [fake.delivered[0]["envelope_id"]]


async def test_ack_waits_for_the_inbox_and_a_failed_store_is_redelivered(fake: FakeSlack, inbox: Inbox,
                                                                         slack: SlackChannel) -> None:
    inbox.gate = asyncio.Event()
    fake.push_message("D1", "keep me", user="U1")
    await fake.wait_until_async(lambda: len(fake.delivered) == 1, TIMEOUT)
    await asyncio.sleep(0.3)
    assert fake.acks == [] and fake.unacked == 1  # not acked while the store has not returned
    inbox.fail = 1
    inbox.gate.set()
    [msg] = await received(fake, inbox, 1)  # the redelivery (retry_attempt 1) stored it
    assert msg.text == "keep me"
    await fake.wait_until_async(lambda: fake.unacked == 0, TIMEOUT)
    assert [d["retry_attempt"] for d in fake.delivered] == [0, 1]
    assert fake.acks == [fake.delivered[1]["envelope_id"]] and fake.expired == []


async def test_channel_mention_is_one_message_and_unmentioned_is_marked(fake: FakeSlack, inbox: Inbox,
                                                                        slack: SlackChannel) -> None:
    fake.push_message("C1", "just humans talking", user="U1", channel_type="channel")
    ts = fake.push_message("C1", "plan the voyage", user="U1", channel_type="channel", mention=True)
    await settled(fake, inbox)
    quiet, asked = inbox.messages
    assert quiet.is_group and not quiet.mentioned  # the access policy ignores it
    assert (asked.message_id, asked.text, asked.mentioned, asked.chat_type) == (ts, "plan the voyage", True, "group")
    kinds = [d["payload"]["event"]["type"] for d in fake.delivered]
    assert kinds.count("app_mention") == 1 and len(fake.acks) == len(fake.delivered)  # both twins acked


async def test_open_channel_needs_no_mention_and_thread_replies_to_the_bot_count(fake: FakeSlack, inbox: Inbox,
                                                                                 slack: SlackChannel) -> None:
    fake.push_message("COPEN", "anyone here?", user="U1", channel_type="channel")
    fake.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "and then?", "ts": "9.000002",
                     "thread_ts": "9.000001", "parent_user_id": "UBOT", "channel_type": "channel"})
    await settled(fake, inbox)
    opened, threaded = inbox.messages
    assert opened.mentioned and threaded.mentioned
    assert threaded.message_id == "9.000001/9.000002"  # the thread travels with the message id


async def test_own_other_bots_subtypes_and_malformed_events_are_skipped(fake: FakeSlack, inbox: Inbox,
                                                                   slack: SlackChannel) -> None:
    fake.add_channel("C1", "general")
    await slack.send(outbound("C1", "our own words"))  # echoed back by Slack with our bot_id
    fake.push_message("C1", "<@UBOT> beep", user="U9", channel_type="channel", bot_id="BOTHER", subtype="bot_message")
    fake.push_message("C1", "<@UBOT> hi again", user="U1", channel_type="channel", subtype="message_changed")
    fake.push_message("C1", "<@UBOT> joined", user="U1", channel_type="channel", subtype="channel_join")
    fake.push_event({"type": "message", "channel": "C1", "user": "UBOT", "text": "me, without bot_id", "ts": "5.1"})
    fake.push_event({"type": "message", "channel": "D1", "user": "U1", "text": {"not": "text"}, "ts": "5.2"})
    fake.push_event({"type": "message", "channel": "D1", "text": "no user", "ts": "5.3", "channel_type": "im"})
    await settled(fake, inbox)
    assert inbox.messages == []
    assert fake.unacked == 0 and fake.expired == []  # skipped events are acknowledged all the same


async def test_text_is_unescaped_and_our_mention_removed(fake: FakeSlack, inbox: Inbox, slack: SlackChannel) -> None:
    fake.push_message("D1", "<@UBOT>  read <https://x.io/a?b=1&amp;c=2|the docs> in <#C9|general>, ask <@U7|bob> "
                      "&lt;now&gt; &amp; <https://y.io> <!here>", user="U1")
    [msg] = await received(fake, inbox, 1)
    assert msg.text == ("read the docs (https://x.io/a?b=1&c=2) in #general, ask @bob <now> & https://y.io @here")
    assert msg.mentioned


async def test_send_replies_in_the_thread_in_mrkdwn(fake: FakeSlack, inbox: Inbox, slack: SlackChannel) -> None:
    ts = fake.push_message("D1", "hi", user="U1")
    [msg] = await received(fake, inbox, 1)
    [rendered] = CHANNELS["slack"].render("**Bold** and *soft* with [a link](https://x.io) and `code`")
    sent_ts = await slack.send(outbound("D1", rendered, reply_to=msg.message_id))
    [posted] = await fake.wait_for_posted_async(1)
    assert posted["ts"] == sent_ts and posted["thread_ts"] == ts and posted["channel"] == "D1"
    assert posted["text"] == rendered == "*Bold* and _soft_ with <https://x.io|a link> and `code`"

    reply = "1.000009/1.000010"  # a message inside a thread: the answer goes to the thread's parent
    await slack.send(outbound("D1", "in thread", reply_to=reply))
    await slack.send(outbound("D1", "top level"))
    second, third = (await fake.wait_for_posted_async(3))[1:]
    assert second["thread_ts"] == "1.000009" and third["thread_ts"] is None


def test_split_keeps_every_converted_chunk_within_the_limit() -> None:
    code = "\n".join(f"row_{i:03d} = [{i}] * 3" for i in range(300))
    markdown = "\n\n".join(f"**Part {i}**: " + "words & more words " * 40 for i in range(12)) + f"\n```\n{code}\n```"
    chunks = split_for_slack(markdown)
    assert len(chunks) >= 3
    assert all(len(c) <= SLACK_LIMIT and "**" not in c for c in chunks)
    joined = "\n".join(chunks)
    assert all(joined.count(f"row_{i:03d} =") == 1 for i in range(300))
    assert all(c.count("```") % 2 == 0 for c in chunks)  # a code block cut in two is closed and reopened


async def test_send_errors_are_classified_for_the_outbox(fake: FakeSlack, inbox: Inbox, slack: SlackChannel) -> None:
    fake.add_channel("C1", "general")

    async def failure() -> SendError:
        with pytest.raises(SendError) as failed:
            await slack.send(outbound("C1", "hello"))
        return failed.value

    fake.fail_next("chat.postMessage", status=429, retry_after=2)
    limited = await failure()
    assert (limited.retryable, limited.retry_after, limited.maybe_delivered) == (True, 2.0, False)
    assert [s for _, m, s in fake.requests if m == "chat.postMessage"] == [429]  # no retry inside slack-sdk

    fake.fail_next("chat.postMessage", status=500)
    midway = await failure()  # Slack's fatal_error: "some aspect of the operation may have succeeded"
    assert midway.maybe_delivered and not midway.retryable

    fake.fail_next("chat.postMessage", status=503)
    assert (await failure()).maybe_delivered  # still fatal_error by body: not resent

    with pytest.raises(SendError) as gone:
        await slack.send(outbound("C404", "hello"))
    assert not gone.value.retryable and not gone.value.maybe_delivered and "channel_not_found" in str(gone.value)
    assert fake.posted == []


async def test_unreachable_slack_is_retryable(fake: FakeSlack, inbox: Inbox, slack: SlackChannel) -> None:
    fake.stop()
    with pytest.raises(SendError) as failed:
        await slack.send(outbound("C1", "hello"))
    assert failed.value.retryable and not failed.value.maybe_delivered


async def test_reconnects_after_a_drop_and_a_disconnect_frame(fake: FakeSlack, inbox: Inbox,
                                                             slack: SlackChannel) -> None:
    opened = fake.connections_opened
    fake.drop_socket()
    await fake.wait_until_async(lambda: fake.connections_opened > opened and fake.open_sockets == 1, TIMEOUT)
    fake.push_message("D1", "after the drop", user="U1")
    assert (await received(fake, inbox, 1))[0].text == "after the drop"
    assert slack.state == "running"

    opened = fake.connections_opened
    fake.send_disconnect()
    await fake.wait_until_async(lambda: fake.connections_opened > opened and fake.open_sockets == 1, TIMEOUT)
    fake.push_message("D1", "after the refresh", user="U1")
    assert (await received(fake, inbox, 2))[1].text == "after the refresh"


async def test_messages_pushed_while_disconnected_arrive_after_the_reconnect(fake: FakeSlack, inbox: Inbox,
                                                                           slack: SlackChannel) -> None:
    fake.drop_socket()
    fake.push_message("D1", "while away", user="U1")  # queued by Slack until a socket is open again
    assert (await received(fake, inbox, 1))[0].text == "while away"
    await fake.wait_until_async(lambda: fake.unacked == 0, TIMEOUT)


async def test_refused_tokens_fail_start_with_a_clear_error(fake: FakeSlack, inbox: Inbox) -> None:
    bad_bot = SlackChannel(SlackConfig(bot_token="xoxb-wrong", app_token=fake.app_token, api_base=fake.api_base))
    with pytest.raises(ChannelError, match="auth.test: invalid_auth"):
        await asyncio.wait_for(bad_bot.start(inbox), TIMEOUT)
    bad_app = SlackChannel(SlackConfig(bot_token=fake.bot_token, app_token="xapp-wrong", api_base=fake.api_base))
    with pytest.raises(ChannelError, match="apps.connections.open: invalid_auth"):
        await asyncio.wait_for(bad_app.start(inbox), TIMEOUT)
    assert fake.sockets_accepted == 0
    with pytest.raises(ChannelError, match="appToken"):
        SlackChannel(SlackConfig(bot_token="xoxb-x"))


async def test_stop_closes_the_socket(fake: FakeSlack, inbox: Inbox) -> None:
    slack = SlackChannel(config(fake), ping_interval=1)
    await asyncio.wait_for(slack.start(inbox), TIMEOUT)
    await asyncio.wait_for(slack.stop(), TIMEOUT)
    assert slack.state == "stopped"
    await fake.wait_until_async(lambda: fake.open_sockets == 0, TIMEOUT)
