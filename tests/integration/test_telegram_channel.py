"""The Telegram adapter alone, in-process: the real python-telegram-bot against the loopback Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from nanofolks.channels.base import SendError
from nanofolks.channels.formatting import utf16_len
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.channels.registry import CHANNELS
from nanofolks.channels.telegram import TelegramChannel
from nanofolks.config.schema import TelegramConfig
from tests.fakes.telegram_server import FakeTelegram


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


class Inbox:
    """Collects what the adapter hands over; can be told to fail (a full disk, a locked database)."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.fail = 0

    async def __call__(self, msg: InboundMessage) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        self.messages.append(msg)

    async def wait(self, n: int, timeout: float = 30) -> list[InboundMessage]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < n:
                await asyncio.sleep(0.02)
        return self.messages


@pytest.fixture
async def channel(tg: FakeTelegram) -> AsyncIterator[tuple[TelegramChannel, Inbox]]:
    chan = TelegramChannel(TelegramConfig(enabled=True, token=tg.token, api_base=tg.api_base, poll_timeout=1),
                           watchdog_grace=1.0)
    inbox = Inbox()
    await chan.start(inbox)
    yield chan, inbox
    await chan.stop()


def out(text: str, key: str = "k", chat: int = 42, reply_to: str | None = None) -> OutboundMessage:
    return OutboundMessage("telegram", "999", str(chat), text, key, reply_to)


async def test_long_markdown_is_split_and_every_chunk_accepted(channel, tg: FakeTelegram) -> None:  # noqa: ANN001
    chan, _ = channel
    tg.push_message(42, "hi")  # the chat exists once someone wrote from it
    code = "\n".join(f"x{i} = '{'é' * 20}🏴‍☠️'" for i in range(400))
    markdown = "Intro **bold** text.\n\n```python\n" + code + "\n```\n\nDone."
    chunks = CHANNELS["telegram"].render(markdown)
    assert len(chunks) >= 3
    ids = [await chan.send(out(c, f"k{i}")) for i, c in enumerate(chunks)]
    assert len(set(ids)) == len(chunks)
    assert all(m["parse_mode"] == "HTML" and utf16_len(m["plain"]) <= 4096 for m in tg.sent)
    joined = "\n".join(m["plain"] for m in tg.sent)
    assert all(joined.count(f"x{i} = ") == 1 for i in range(400)) and joined.rstrip().endswith("Done.")


async def test_send_errors_say_what_to_do_next(channel, tg: FakeTelegram) -> None:  # noqa: ANN001
    chan, _ = channel
    tg.push_message(42, "hi")
    tg.fail_next("sendMessage", status=429, description="Too Many Requests: retry after 3", retry_after=3)
    with pytest.raises(SendError) as throttled:
        await chan.send(out("a"))
    assert throttled.value.retryable and throttled.value.retry_after == 3.0
    tg.fail_next("sendMessage", status=500, description="Internal Server Error", retry_after=None)
    with pytest.raises(SendError) as broken:
        await chan.send(out("b"))
    assert broken.value.retryable and not broken.value.maybe_delivered
    tg.fail_next("sendMessage", status=403, description="Forbidden: bot was blocked by the user", retry_after=None)
    with pytest.raises(SendError) as blocked:
        await chan.send(out("c"))
    assert not blocked.value.retryable and not blocked.value.maybe_delivered
    tg.drop_next("sendMessage")
    with pytest.raises(SendError) as dropped:
        await chan.send(out("d"))
    assert dropped.value.maybe_delivered and not dropped.value.retryable
    assert [m["text"] for m in tg.sent] == ["d"]  # the dropped one was in fact delivered


async def test_rejected_html_is_resent_as_plain_text(channel, tg: FakeTelegram) -> None:  # noqa: ANN001
    chan, _ = channel
    tg.push_message(42, "hi")
    tg.fail_next("sendMessage", status=400, description="Bad Request: can't parse entities: oops", retry_after=None)
    [html] = CHANNELS["telegram"].render("**bold** <b")
    await chan.send(out(html, reply_to="1"))
    assert tg.sent[0]["parse_mode"] is None and tg.sent[0]["text"] == "bold <b"  # what the HTML would show
    assert tg.sent[0]["reply_to_message_id"] == 1


async def test_offset_moves_only_after_the_message_is_stored(channel, tg: FakeTelegram) -> None:  # noqa: ANN001
    chan, inbox = channel
    inbox.fail = 1
    first = tg.push_message(42, "hello @crew_bot there")
    messages = await inbox.wait(1, 60)  # failed once, fetched again after a pause
    assert messages[0].text == "hello there" and messages[0].mentioned
    async with asyncio.timeout(30):  # the offset passes the update once it is stored
        while tg.confirmed_offset() <= first:
            await asyncio.sleep(0.05)
    assert len(inbox.messages) == 1


async def test_odd_updates_are_skipped_not_fatal(channel, tg: FakeTelegram) -> None:  # noqa: ANN001
    chan, inbox = channel
    tg.push_raw_update({"message": {"message_id": 1, "chat": "broken"}})
    tg.push_raw_update({"edited_message": {"message_id": 2, "date": 0, "chat": {"id": 1, "type": "private"}}})
    tg.push_raw_update({"message": {"message_id": 3, "date": 0, "chat": {"id": 5, "type": "private"},
                                    "from": {"id": 5, "is_bot": True, "first_name": "B"}, "text": "a bot"}})
    tg.push_message(42, "/rooms@crew_bot", chat_type="group")
    msgs = await inbox.wait(1)
    assert [(m.text, m.chat_type, m.mentioned) for m in msgs] == [("/rooms", "group", True)]
    assert chan.state == "running"


async def test_watchdog_restarts_a_stalled_poll(channel, tg: FakeTelegram) -> None:  # noqa: ANN001
    chan, inbox = channel
    tg.delay_next("getUpdates", 8)  # the next poll hangs past poll_timeout + grace (2 s here)
    async with asyncio.timeout(30):
        while chan.restarts < 1:
            await asyncio.sleep(0.05)
    tg.push_message(42, "still there?")
    assert [m.text for m in await inbox.wait(1, 30)] == ["still there?"]
