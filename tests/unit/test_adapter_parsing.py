"""Every adapter's parser against arbitrary JSON of its platform's shapes (hypothesis): whatever arrives,
the parser returns a well-formed message, a deliberate skip (None) or a Rejected with its reason, and
never raises (an exception there used to end the Telegram poller and Discord's connection for good)."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from telegram import Bot

from nanofolks.channels.discord import DiscordChannel, _make_client
from nanofolks.channels.messages import InboundMessage, Rejected
from nanofolks.channels.slack import SlackChannel
from nanofolks.channels.telegram import TelegramChannel
from nanofolks.channels.whatsapp import WhatsAppChannel
from nanofolks.config.schema import DiscordConfig, SlackConfig, TelegramConfig, WhatsAppConfig

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOT_ID = 999

# Text as platforms may really send it: any code point, lone surrogates included ("\ud800" is valid JSON).
TEXT = st.text(st.characters(exclude_categories=[]), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | TEXT
JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=6)


def field(right: st.SearchStrategy) -> st.SearchStrategy:
    """A field as the platform documents it, or any other JSON in its place."""
    return right | JUNK


def shaped(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy] | None = None
           ) -> st.SearchStrategy:
    return st.fixed_dictionaries({k: field(v) for k, v in required.items()},
                                 optional={k: field(v) for k, v in (optional or {}).items()})


def check(result: Any, platform: str) -> None:
    event(type(result).__name__)  # how many were messages, skips, rejects (--hypothesis-show-statistics)
    if result is None:
        return
    assert isinstance(result, InboundMessage | Rejected), result
    assert result.platform == platform
    if isinstance(result, Rejected):
        assert result.reason
        (result.reason + result.raw + result.ref).encode("utf-8")  # storable
        return
    for value in (result.text, result.chat_id, result.message_id, result.sender_id, result.sender_name,
                  result.sender_username):
        assert isinstance(value, str)
        value.encode("utf-8")  # no lone surrogate reaches the store
    assert result.text and result.chat_id and result.message_id and result.sender_id
    assert result.chat_type in ("private", "group", "thread")


# --- Telegram -----------------------------------------------------------------------------------------

USER = shaped({"id": st.integers(1, 2**40), "is_bot": st.booleans(), "first_name": TEXT},
              {"username": TEXT, "last_name": TEXT})
CHAT = shaped({"id": st.integers(-(2**40), 2**40), "type": st.sampled_from(["private", "group", "supergroup",
                                                                             "channel"])}, {"title": TEXT})
ENTITY = shaped({"type": st.sampled_from(["mention", "text_mention", "bot_command"]),
                 "offset": st.integers(0, 50), "length": st.integers(0, 50)}, {"user": USER})
TG_MESSAGE = shaped(
    {"message_id": st.integers(1, 2**31), "date": st.integers(0, 2**31), "chat": CHAT},
    {"from": USER, "text": TEXT, "caption": TEXT, "entities": st.lists(ENTITY, max_size=2),
     "reply_to_message": shaped({"message_id": st.integers(1, 9), "date": st.integers(0, 9), "chat": CHAT},
                                {"from": USER})},
)
TG_UPDATE = st.fixed_dictionaries({"update_id": st.integers(1, 2**31)},
                                  optional={"message": field(TG_MESSAGE), "edited_message": field(TG_MESSAGE)})


@pytest.fixture(scope="module")
def telegram() -> TelegramChannel:
    channel = TelegramChannel(TelegramConfig(enabled=True, token="123:abc"))
    channel._bot = Bot("123:abc")  # de_json needs a Bot object; no request is made
    channel._identify(BOT_ID, "crew_bot")
    return channel


@EXAMPLES
@given(update=TG_UPDATE)
def test_telegram_parser_never_raises(telegram: TelegramChannel, update: dict) -> None:
    check(telegram._parse(update), "telegram")


def test_telegram_text_that_is_a_number_is_rejected_with_its_reason(telegram: TelegramChannel) -> None:
    update = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                          "from": {"id": 5, "is_bot": False, "first_name": "A"}, "text": 12345}}
    rejected = telegram._parse(update)
    assert isinstance(rejected, Rejected) and rejected.ref == "7" and "int" in rejected.reason
    assert '"text": 12345' in rejected.raw


def test_a_lone_surrogate_becomes_the_replacement_character(telegram: TelegramChannel) -> None:
    update = {"update_id": 8, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                          "from": {"id": 5, "is_bot": False, "first_name": "Al\ud800"},
                                          "text": "hi \ud800 there"}}
    msg = telegram._parse(update)
    assert isinstance(msg, InboundMessage)
    assert msg.text == "hi \ufffd there" and msg.sender_name == "Al\ufffd"


# --- Slack --------------------------------------------------------------------------------------------

SLACK_EVENT = shaped(
    {"type": st.sampled_from(["message", "app_mention"]), "channel": st.sampled_from(["C1", "D2", "G3"]),
     "ts": st.just("1700000000.000100"), "user": st.sampled_from(["U1", "U2", "UBOT"]), "text": TEXT},
    {"subtype": st.sampled_from(["thread_broadcast", "message_changed", "bot_message"]),
     "thread_ts": st.just("1700000000.000001"), "channel_type": st.sampled_from(["im", "channel"]),
     "bot_id": TEXT, "parent_user_id": st.just("UBOT")},
)


@pytest.fixture(scope="module")
def slack() -> SlackChannel:
    channel = SlackChannel(SlackConfig(enabled=True, bot_token="xoxb-1", app_token="xapp-1"))
    channel._bot_user = "UBOT"
    return channel


@EXAMPLES
@given(event=SLACK_EVENT | JUNK)
def test_slack_parser_never_raises(slack: SlackChannel, event: Any) -> None:
    check(slack._parse(event), "slack")


def test_slack_subtype_that_is_a_list_is_rejected(slack: SlackChannel) -> None:
    event = {"type": "message", "channel": "D1", "ts": "1.2", "user": "U1", "text": "hi", "subtype": ["x"]}
    rejected = slack._parse(event)
    assert isinstance(rejected, Rejected) and rejected.ref == "1.2" and "subtype" in rejected.raw


# --- WhatsApp -----------------------------------------------------------------------------------------

JID = st.sampled_from(["15550001111@s.whatsapp.net", "15550002222:3@s.whatsapp.net", "77@lid", "1-2@g.us"])
WA_FRAME = shaped(
    {"type": st.just("message"), "id": TEXT, "chatId": JID, "sender": JID, "text": TEXT},
    {"senderAlt": JID, "pushName": TEXT, "isGroup": st.booleans(), "mentionedMe": st.booleans(),
     "replyToMe": st.booleans()},
)


@pytest.fixture(scope="module")
def whatsapp() -> WhatsAppChannel:
    channel = WhatsAppChannel(WhatsAppConfig(enabled=True, bridge_token="t"))
    channel._me, channel.username = "15550009999@s.whatsapp.net", "15550009999"
    return channel


@EXAMPLES
@given(frame=WA_FRAME)
def test_whatsapp_parser_never_raises(whatsapp: WhatsAppChannel, frame: dict) -> None:
    check(whatsapp._parse(frame), "whatsapp")


def test_whatsapp_frame_without_a_chat_is_rejected(whatsapp: WhatsAppChannel) -> None:
    rejected = whatsapp._parse({"type": "message", "id": "M1", "sender": "1@s.whatsapp.net", "text": "hi"})
    assert isinstance(rejected, Rejected) and rejected.ref == "M1" and "chatId" in rejected.reason


# --- Discord ------------------------------------------------------------------------------------------

SNOWFLAKE = st.integers(1, 2**62).map(str)
D_USER = shaped({"id": SNOWFLAKE, "username": TEXT, "discriminator": st.just("0"), "avatar": st.none()},
                {"global_name": TEXT, "bot": st.booleans()})
D_MESSAGE = shaped(
    {"id": SNOWFLAKE, "channel_id": SNOWFLAKE, "author": D_USER, "content": TEXT,
     "timestamp": st.just("2026-01-01T00:00:00+00:00"), "edited_timestamp": st.none(), "tts": st.booleans(),
     "mention_everyone": st.booleans(), "mentions": st.lists(D_USER, max_size=2), "mention_roles": st.just([]),
     "attachments": st.just([]), "embeds": st.just([]), "pinned": st.booleans(), "type": st.sampled_from([0, 19, 7])},
    {"guild_id": SNOWFLAKE},
)


async def _discord_once(payload: Any) -> list[InboundMessage | Rejected]:
    got: list[InboundMessage | Rejected] = []

    async def hand_over(msg: InboundMessage | Rejected) -> None:
        got.append(msg)

    channel = DiscordChannel(DiscordConfig(enabled=True, token="t"))
    channel._on_message = hand_over
    client = channel._client = _make_client(channel, 0.1)
    async with client:  # sets discord.py up on this loop, as login() would, without a request
        client._connection.user = discord.ClientUser(
            state=client._connection, data={"id": str(BOT_ID), "username": "crewbot", "discriminator": "0",
                                            "avatar": None})
        client._connection.parsers["MESSAGE_CREATE"](payload)  # what the gateway's read loop calls
        for _ in range(5):  # the message event runs in its own task
            await asyncio.sleep(0)
    return got


@EXAMPLES
@given(payload=D_MESSAGE)
def test_discord_message_events_never_end_the_connection(payload: dict) -> None:
    got = asyncio.run(_discord_once(payload))
    assert len(got) <= 1
    for item in got:
        check(item, "discord")


def test_discord_content_that_is_a_number_is_rejected() -> None:
    payload = {"id": "5", "channel_id": "6", "author": {"id": "7", "username": "ann", "discriminator": "0",
                                                         "avatar": None},
               "content": 12345, "timestamp": "2026-01-01T00:00:00+00:00", "edited_timestamp": None, "tts": False,
               "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
               "pinned": False, "type": 0}
    [rejected] = asyncio.run(_discord_once(payload))
    assert isinstance(rejected, Rejected) and rejected.ref == "5" and "int" in rejected.reason


def test_discord_unreadable_message_event_is_rejected_not_raised() -> None:
    [rejected] = asyncio.run(_discord_once({"id": "9", "channel_id": "not a number"}))
    assert isinstance(rejected, Rejected) and rejected.ref == "9"
