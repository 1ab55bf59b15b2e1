"""The loopback Telegram Bot API server, driven by the REAL python-telegram-bot (and raw HTTP)."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import telegram
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, MessageHandler, filters
from telegram.request import HTTPXRequest

from tests.fakes.telegram_server import FakeTelegram, parse_html, render_text, utf16_len

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tg():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram):
    async with telegram.Bot(tg.token, base_url=f"{tg.api_base}/bot") as client:
        yield client


def raw(tg: FakeTelegram, method: str, *, data: bytes | None = None, content_type: str = "",
        query: str = "", token: str | None = None) -> tuple[int, dict]:  # fmt: skip
    """One plain HTTP request to the server: (status, JSON answer)."""
    url = f"{tg.api_base}/bot{token or tg.token}/{method}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A webhook endpoint on loopback (own thread): records each POST, answers queued statuses, then 200."""

    def __init__(self) -> None:
        self.statuses: deque[int] = deque()
        self.posts: list[tuple[str, http.client.HTTPMessage, dict]] = []  # (path, headers, JSON body)
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._cond:
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                    receiver.posts.append((self.path, self.headers, body))
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, n: int, timeout: float = 30.0) -> list[tuple[str, http.client.HTTPMessage, dict]]:
        """Block until at least n POSTs arrived; returns a copy of `posts`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.posts) < n:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out waiting for {n} webhook POST(s); got {self.posts!r}"
                self._cond.wait(remaining)
            return list(self.posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


# --------------------------------------------------------------------------- HTML checker (TDLib's rules)


def test_parse_html_gives_plain_text_and_utf16_entities():
    text, entities = parse_html(
        '😀<b>a<i>b</i></b> <a href="https://x.y/?a=1&amp;b=2">link</a> '
        '<pre><code class="language-python">x = 1</code></pre> <code>y</code> '
        '<span class="tg-spoiler">s</span><blockquote expandable>q</blockquote>'
    )
    assert text == "😀ab link x = 1 y sq"
    assert entities == [
        {"type": "bold", "offset": 2, "length": 2},  # the emoji before is two UTF-16 units
        {"type": "italic", "offset": 3, "length": 1},
        {"type": "text_link", "offset": 5, "length": 4, "url": "https://x.y/?a=1&b=2"},
        {"type": "pre", "offset": 10, "length": 5, "language": "python"},
        {"type": "code", "offset": 16, "length": 1},
        {"type": "spoiler", "offset": 18, "length": 1},
        {"type": "expandable_blockquote", "offset": 19, "length": 1},
    ]


def test_parse_html_decodes_known_references_and_keeps_a_bare_ampersand():
    assert parse_html("&lt;b&gt; &amp; &quot;&#65;&#x42;")[0] == '<b> & "AB'
    assert parse_html("Tom & Jerry &nbsp; AT&T")[0] == "Tom & Jerry &nbsp; AT&T"  # TDLib keeps these literal


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("if a < b", 'Unsupported start tag "" at byte offset 5'),
        ("привет <br>", 'Unsupported start tag "br" at byte offset 13'),  # bytes, not characters
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ],
)
def test_parse_html_rejects_like_telegram(html: str, reason: str):
    with pytest.raises(ValueError) as info:
        parse_html(html)
    assert str(info.value) == reason


def test_length_is_counted_in_utf16_after_entity_parsing():
    assert render_text("<b>" + "x" * 4096 + "</b>", "HTML")[0] == "x" * 4096  # tags don't count
    assert utf16_len("😀" * 2048) == 4096
    render_text("😀" * 2048, None)
    for too_long in ("x" * 4097, "😀" * 2049, "<i>" + "&amp;" * 4097 + "</i>"):
        with pytest.raises(Exception, match="message is too long"):
            render_text(too_long, "HTML")
    with pytest.raises(Exception, match="message text is empty"):
        render_text("<b> </b>\n", "HTML")


# --------------------------------------------------------------------------- the real python-telegram-bot


async def test_get_me(bot: telegram.Bot, tg: FakeTelegram):
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (999, "crew_bot", True)
    assert me.can_join_groups is True and me.can_read_all_group_messages is False
    assert me.supports_inline_queries is False
    assert tg.count("getMe") >= 2  # Bot.initialize asked too


async def test_send_message_html_is_accepted_and_recorded(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(42, "hello", username="alice")
    message = await bot.send_message(42, "<b>Aye</b> &amp; more", parse_mode="HTML")
    assert message.text == "Aye & more"
    assert message.from_user.id == 999 and message.chat.id == 42
    assert message.message_id == 2  # the user's message was 1 in this chat
    assert message.entities[0].type == "bold"
    assert tg.sent == [
        {"method": "sendMessage", "chat_id": 42, "text": "<b>Aye</b> &amp; more", "parse_mode": "HTML",
         "message_id": 2, "reply_to_message_id": None, "plain": "Aye & more",
         "entities": [{"type": "bold", "offset": 0, "length": 3}]},
    ]  # fmt: skip


async def test_bad_html_too_long_and_empty_are_rejected(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(42, "hello")
    with pytest.raises(BadRequest, match='(?i)can\'t parse entities: unsupported start tag "foo"'):
        await bot.send_message(42, "<foo>bar</foo>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(42, "y" * 4097)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(42, "   ")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(7, "who?")
    assert tg.sent == []
    assert tg.count("sendMessage") == 4  # failed calls are recorded too


async def test_replies_need_an_existing_message(bot: telegram.Bot, tg: FakeTelegram):
    update_id = tg.push_message(-100, "@crew_bot hi", chat_type="supergroup", user_id=5)
    asked = tg.message_id_of(update_id)
    reply = await bot.send_message(-100, "hi back", reply_to_message_id=asked)
    assert reply.reply_to_message.message_id == asked
    assert tg.sent[-1]["reply_to_message_id"] == asked
    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(-100, "x", reply_parameters=telegram.ReplyParameters(message_id=999))
    lenient = telegram.ReplyParameters(message_id=999, allow_sending_without_reply=True)
    assert (await bot.send_message(-100, "x", reply_parameters=lenient)).reply_to_message is None


async def test_edit_message_text_and_chat_action(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(42, "hello")
    first = await bot.send_message(42, "draft")
    edited = await bot.edit_message_text(
        "<i>final</i>", chat_id=42, message_id=first.message_id, parse_mode="HTML"
    )
    assert edited.text == "final" and edited.edit_date is not None
    assert tg.sent[-1]["method"] == "editMessageText" and tg.sent[-1]["message_id"] == first.message_id
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text(
            "<i>final</i>", chat_id=42, message_id=first.message_id, parse_mode="HTML"
        )
    with pytest.raises(BadRequest, match="(?i)message can't be edited"):
        await bot.edit_message_text("mine now", chat_id=42, message_id=1)  # the user's message
    assert await bot.send_chat_action(42, "typing") is True
    with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
        await bot.send_chat_action(42, "dancing")


async def test_pushed_messages_carry_telegram_entities(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(-5, "first", chat_type="group", chat_title="Crew")
    await bot.send_message(-5, "bot says")
    tg.push_message(-5, "😀 hey @crew_bot /room general", chat_type="group", user_id=77, username="bob",
                    reply_to_bot=True)  # fmt: skip
    updates = await bot.get_updates()
    message = updates[-1].message
    assert message.chat.type == "group" and message.chat.title == "Crew"
    assert message.from_user.id == 77 and message.from_user.username == "bob"
    assert message.reply_to_message.from_user.id == 999
    mention, command = message.entities
    assert (mention.type, mention.offset, mention.length) == ("mention", 7, 9)  # 😀 is two UTF-16 units
    assert message.parse_entity(mention) == "@crew_bot"
    assert message.parse_entity(command) == "/room"


async def test_offsets_confirm_updates_for_good(bot: telegram.Bot, tg: FakeTelegram):
    first = tg.push_message(1, "one")
    second = tg.push_message(1, "two")
    assert [u.update_id for u in await bot.get_updates()] == [first, second]
    assert [u.update_id for u in await bot.get_updates()] == [first, second]  # not confirmed yet
    assert [u.message.text for u in await bot.get_updates(offset=second)] == ["two"]
    assert tg.confirmed_offset() == second
    assert await bot.get_updates(offset=second + 1) == ()
    assert await bot.get_updates(offset=first) == ()  # gone for good
    assert tg.pending_updates() == []


async def test_limit_and_negative_offset(bot: telegram.Bot, tg: FakeTelegram):
    ids = [tg.push_message(1, str(n)) for n in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=-2)] == ids[3:]
    assert tg.pending_updates() == ids[3:]


async def test_long_poll_times_out_empty(bot: telegram.Bot, tg: FakeTelegram):
    started = time.monotonic()
    assert await bot.get_updates(timeout=2) == ()
    assert time.monotonic() - started >= 1.9  # it really waited for the timeout


async def test_long_poll_returns_when_an_update_arrives(bot: telegram.Bot, tg: FakeTelegram):
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=60))
    await asyncio.to_thread(tg.wait_for, lambda: tg.count("getUpdates") == 1, 30, "the long poll")
    update_id = tg.push_message(3, "wake up")
    updates = await asyncio.wait_for(poll, 50)
    assert [u.update_id for u in updates] == [update_id]
    assert time.monotonic() - started < 50  # answered on arrival, not at the 60 s timeout


async def test_a_second_poller_ends_the_first_with_conflict(bot: telegram.Bot, tg: FakeTelegram):
    first = asyncio.create_task(bot.get_updates(timeout=60))
    await asyncio.to_thread(tg.wait_for, lambda: tg.count("getUpdates") == 1, 30, "the first poll")
    async with telegram.Bot(tg.token, base_url=f"{tg.api_base}/bot") as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 30)


async def test_webhook_blocks_polling_until_deleted(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(1, "queued")
    url = f"https://127.0.0.1:{free_port()}/hook"  # refused: the update stays pending
    assert await bot.set_webhook(url, secret_token="s3cret")
    info = await bot.get_webhook_info()
    assert info.url == url and info.pending_update_count == 1
    assert tg.webhook["secret_token"] == "s3cret"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == ()
    assert (await bot.get_webhook_info()).url == ""


async def test_webhook_gets_each_update_with_the_secret(bot: telegram.Bot, tg: FakeTelegram, hook: Receiver):
    assert await bot.set_webhook(hook.url, secret_token="s3cret-Token_1")
    first = tg.push_message(42, "via hook")
    second = tg.push_message(42, "and again")
    posts = await asyncio.to_thread(hook.wait_for, 2)
    assert [update["update_id"] for _, _, update in posts] == [first, second]  # in order, one per request
    path, headers, update = posts[0]
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret-Token_1"
    assert telegram.Update.de_json(update, bot).message.text == "via hook"
    tg.wait_for(lambda: tg.pending_updates() == [], what="confirmed deliveries")
    assert tg.webhook_deliveries == [(first, 200), (second, 200)]
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0 and info.last_error_message is None
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()


async def test_failed_webhook_deliveries_are_retried(bot: telegram.Bot, tg: FakeTelegram, hook: Receiver):
    hook.statuses.extend([500, 500])
    assert await bot.set_webhook(hook.url)
    update_id = tg.push_message(1, "keep trying")
    tg.wait_for(lambda: len(tg.webhook_deliveries) >= 2, what="two failed deliveries")
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert abs(info.last_error_date.timestamp() - time.time()) < 60
    posts = await asyncio.to_thread(hook.wait_for, 3)
    assert [update["update_id"] for _, _, update in posts] == [update_id] * 3
    tg.wait_for(lambda: len(tg.webhook_deliveries) == 3, what="the successful delivery")
    assert tg.webhook_deliveries == [(update_id, 500), (update_id, 500), (update_id, 200)]
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"  # kept


def test_unreachable_webhook_keeps_the_update_pending():
    with FakeTelegram(webhook_retry=0.05) as tg:
        assert raw(tg, "setWebhook", query=f"url=http://localhost:{free_port()}/hook")[0] == 200
        update_id = tg.push_message(1, "anyone there?")
        tg.wait_for(lambda: len(tg.webhook_deliveries) >= 3, what="three attempts")
        assert tg.webhook_deliveries[:3] == [(update_id, "Connection refused")] * 3
        info = raw(tg, "getWebhookInfo")[1]["result"]
        assert info["pending_update_count"] == 1 and info["last_error_message"] == "Connection refused"
        assert isinstance(info["last_error_date"], int)


async def test_delete_webhook_stops_deliveries(bot: telegram.Bot, tg: FakeTelegram, hook: Receiver):
    assert await bot.set_webhook(hook.url)
    first = tg.push_message(1, "hooked")
    await asyncio.to_thread(hook.wait_for, 1)
    tg.wait_for(lambda: tg.pending_updates() == [], what="the confirmed delivery")
    assert await bot.delete_webhook()
    tg.wait_for(
        lambda: "FakeTelegram webhook" not in {t.name for t in threading.enumerate()},
        what="the delivery thread to end",
    )
    second = tg.push_message(1, "polled")
    assert [u.update_id for u in await bot.get_updates()] == [second]
    assert len(hook.posts) == 1 and tg.webhook_deliveries == [(first, 200)]


async def test_set_webhook_is_checked_like_telegram(bot: telegram.Bot, tg: FakeTelegram):
    with pytest.raises(BadRequest, match="(?i)bad webhook: an https url must be provided"):
        await bot.set_webhook("http://example.com/hook")
    with pytest.raises(BadRequest, match="(?i)secret token contains unallowed characters"):
        await bot.set_webhook("https://example.invalid/hook", secret_token="not allowed!")
    with pytest.raises(BadRequest, match="(?i)only on ports 80, 88, 443 or 8443"):
        await bot.set_webhook("https://example.invalid:8080/hook")
    assert raw(tg, "setWebhook", query="url=http://10.0.0.1/hook") == (400, {
        "ok": False, "error_code": 400,
        "description": "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"})  # fmt: skip
    assert tg.webhook == {}
    # nothing is pending, so nothing is posted to this host
    assert await bot.set_webhook("https://example.invalid:8443/hook", max_connections=5)
    info = await bot.get_webhook_info()
    assert info.max_connections == 5 and info.last_error_date is None
    assert await bot.set_webhook(f"http://localhost:{free_port()}/hook")  # plain http is fine on loopback


async def test_redeliver_posts_the_update_again(bot: telegram.Bot, tg: FakeTelegram, hook: Receiver):
    assert await bot.set_webhook(hook.url)
    update_id = tg.push_message(1, "twice")
    await asyncio.to_thread(hook.wait_for, 1)
    tg.wait_for(lambda: tg.pending_updates() == [], what="the confirmed delivery")
    tg.redeliver(update_id)
    posts = await asyncio.to_thread(hook.wait_for, 2)
    assert [update["update_id"] for _, _, update in posts] == [update_id, update_id]  # the app must dedupe
    tg.wait_for(lambda: tg.pending_updates() == [], what="the confirmed redelivery")
    assert tg.webhook_deliveries == [(update_id, 200), (update_id, 200)]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # int now, timedelta in v23
async def test_429_raises_retry_after_once(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(42, "hello")
    tg.fail_next("sendMessage", retry_after=3)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(42, "first try")
    assert info.value.retry_after in (3, datetime.timedelta(seconds=3))
    assert tg.sent == []
    await bot.send_message(42, "second try")
    assert [s["text"] for s in tg.sent] == ["second try"]


async def test_server_errors_are_scriptable(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(42, "hello")
    tg.fail_next("sendMessage", status=502, description="Bad Gateway", retry_after=None)
    tg.fail_next(
        "sendMessage", status=403, description="Forbidden: bot was blocked by the user", retry_after=None
    )
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(42, "x")
    with pytest.raises(telegram.error.Forbidden, match="blocked by the user"):
        await bot.send_message(42, "x")
    with pytest.raises(ValueError, match="unknown Bot API method"):
        tg.fail_next("sendMesage")


async def test_dropped_send_is_delivered_but_unanswered(bot: telegram.Bot, tg: FakeTelegram):
    tg.push_message(42, "hello")
    tg.drop_next("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(42, "maybe delivered")
    assert [s["text"] for s in tg.sent] == ["maybe delivered"]
    assert tg.dropped[0]["method"] == "sendMessage" and tg.dropped[0]["status"] == 200
    await bot.send_message(42, "next")  # the connection pool recovers
    assert len(tg.sent) == 2


async def test_slow_answer_times_out_yet_takes_effect(tg: FakeTelegram):
    tg.push_message(42, "hello")
    tg.delay_next("sendMessage", 3)
    request = HTTPXRequest(read_timeout=0.5)
    async with telegram.Bot(tg.token, base_url=f"{tg.api_base}/bot", request=request) as slow_bot:
        with pytest.raises(TimedOut):
            await slow_bot.send_message(42, "late")
    sent = await asyncio.to_thread(tg.wait_for_sent, 1)
    assert sent[0]["text"] == "late"


async def test_commands(bot: telegram.Bot, tg: FakeTelegram):
    assert await bot.get_my_commands() == ()
    await bot.set_my_commands([("room", "Switch room"), ("rooms", "List rooms")])
    assert [c.command for c in await bot.get_my_commands()] == ["room", "rooms"]
    assert tg.commands() == [{"command": "room", "description": "Switch room"},
                             {"command": "rooms", "description": "List rooms"}]  # fmt: skip
    private = telegram.BotCommandScopeAllPrivateChats()
    await bot.set_my_commands([("help", "Help")], scope=private)
    assert tg.commands({"type": "all_private_chats"}) == [{"command": "help", "description": "Help"}]
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await bot.set_my_commands([("Bad Command", "x")])
    await bot.delete_my_commands()
    assert tg.commands() == [] and tg.count("setMyCommands") == 3


async def test_redelivered_update_comes_back_once(bot: telegram.Bot, tg: FakeTelegram):
    update_id = tg.push_message(1, "once")
    assert len(await bot.get_updates()) == 1
    assert await bot.get_updates(offset=update_id + 1) == ()
    tg.redeliver(update_id)
    again = await bot.get_updates(offset=update_id + 1)
    assert [u.message.text for u in again] == ["once"]
    assert await bot.get_updates(offset=update_id + 1) == ()
    with pytest.raises(ValueError):
        tg.redeliver(12345678)


async def test_wrong_token_is_rejected(tg: FakeTelegram):
    with pytest.raises(InvalidToken):
        async with telegram.Bot("123456:WRONG", base_url=f"{tg.api_base}/bot"):
            pass
    assert tg.calls[-1][0] == "getMe"


async def test_raw_updates_are_returned_as_given(bot: telegram.Bot, tg: FakeTelegram):
    update_id = tg.push_raw_update({"edited_channel_post": {"weird": True}})
    tg.push_raw_update({"update_id": update_id + 10, "message": None})
    status, answer = raw(tg, "getUpdates")
    assert status == 200
    assert answer["result"] == [
        {"update_id": update_id, "edited_channel_post": {"weird": True}},
        {"update_id": update_id + 10, "message": None},
    ]
    assert tg.push_message(1, "after") == update_id + 11


async def test_application_polling_receives_and_replies(tg: FakeTelegram):
    app = Application.builder().token(tg.token).base_url(f"{tg.api_base}/bot").build()
    seen: list[str] = []

    async def echo(update: telegram.Update, context: object) -> None:
        seen.append(update.message.text)
        await update.message.reply_text(f"echo: {update.message.text}")

    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        update_id = tg.push_message(7, "ahoy")
        sent = await asyncio.to_thread(tg.wait_for_sent, 1)
        await app.updater.stop()
        await app.stop()
    assert seen == ["ahoy"]
    assert (sent[0]["chat_id"], sent[0]["text"]) == (7, "echo: ahoy")
    assert tg.count("deleteWebhook") == 1  # run by start_polling, as against Telegram
    assert tg.confirmed_offset() == update_id + 1 and tg.pending_updates() == []


# --------------------------------------------------------------------------- plain HTTP


def test_json_form_multipart_and_query_bodies(tg: FakeTelegram):
    tg.push_message(42, "hello")
    json_body = json.dumps({"chat_id": 42, "text": "<b>json</b>", "parse_mode": "HTML"}).encode()
    assert (
        raw(tg, "sendMessage", data=json_body, content_type="application/json")[1]["result"]["text"] == "json"
    )
    form = urllib.parse.urlencode({"chat_id": "42", "text": "form", "reply_parameters": '{"message_id": 1}'})
    status, answer = raw(
        tg, "sendmessage", data=form.encode(), content_type="application/x-www-form-urlencoded"
    )
    assert (
        status == 200 and answer["result"]["reply_to_message"]["message_id"] == 1
    )  # method names ignore case
    multipart = httpx.post(f"{tg.api_base}/bot{tg.token}/sendMessage", data={"chat_id": "42", "text": "multi"},
                           files={"document": ("a.txt", b"abc")}, timeout=30)  # fmt: skip
    assert multipart.status_code == 200 and multipart.json()["result"]["text"] == "multi"
    assert raw(tg, "sendMessage", query="chat_id=42&text=query")[1]["result"]["text"] == "query"
    assert [s["text"] for s in tg.sent] == ["<b>json</b>", "form", "multi", "query"]
    assert tg.calls[2][1]["document"] == {"filename": "a.txt", "size": 3}


def test_error_bodies(tg: FakeTelegram):
    assert raw(tg, "getMe", token="1:nope") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert raw(tg, "sendSticker") == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    bad_json = raw(tg, "sendMessage", data=b"{oops", content_type="application/json")
    assert bad_json[0] == 400 and bad_json[1]["description"].startswith("Bad Request")
    tg.fail_next("getUpdates", description="Too Many Requests: retry after 7", retry_after=7)
    assert raw(tg, "getUpdates") == (429, {"ok": False, "error_code": 429,
                                           "description": "Too Many Requests: retry after 7",
                                           "parameters": {"retry_after": 7}})  # fmt: skip
    assert [method for method, _ in tg.calls] == ["getMe", "sendSticker", "sendMessage", "getUpdates"]


def test_wait_for_sent_reports_what_was_sent(tg: FakeTelegram):
    tg.push_message(42, "hello")
    raw(tg, "sendMessage", query="chat_id=42&text=only+one")
    with pytest.raises(AssertionError, match="only one"):
        tg.wait_for_sent(2, timeout=0.5)


def test_cli_and_control_api(hook: Receiver):
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.telegram_server", "--port", "0"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        ready, api_base, token = proc.stdout.readline().split()
        assert ready == "READY" and api_base.startswith("http://127.0.0.1:") and token == "123456:TEST-TOKEN"
        with httpx.Client(base_url=api_base, timeout=30) as http:
            pushed = http.post("/_control/push", json={"chat_id": 8, "text": "from afar", "username": "zed"})
            update_id = pushed.json()["result"]
            updates = http.post(f"/bot{token}/getUpdates", data={"timeout": "5"}).json()["result"]
            assert [u["update_id"] for u in updates] == [update_id]
            assert updates[0]["message"]["from"]["username"] == "zed"
            http.post(f"/bot{token}/sendMessage", data={"chat_id": "8", "text": "hi zed"}).raise_for_status()
            assert [s["text"] for s in http.get("/_control/sent").json()["result"]] == ["hi zed"]
            http.post("/_control/fail_next", json={"method": "sendMessage"}).raise_for_status()
            assert (
                http.post(f"/bot{token}/sendMessage", data={"chat_id": "8", "text": "x"}).status_code == 429
            )
            state = http.get("/_control/state").json()["result"]
            assert state["counts"] == {"getUpdates": 1, "sendMessage": 2}
            assert (state["webhook_url"], state["webhook_deliveries"]) == ("", 0)
            assert http.post("/_control/push", json={"text": "no chat"}).status_code == 400

            http.post(f"/bot{token}/setWebhook", data={"url": hook.url}).raise_for_status()
            posted = [update["update_id"] for _, _, update in hook.wait_for(1)]
            assert posted == [update_id]  # getUpdates above did not confirm it
            deadline = time.monotonic() + 30
            while (state := http.get("/_control/state").json()["result"])["pending"]:
                assert time.monotonic() < deadline, f"the delivery was never confirmed: {state}"
                time.sleep(0.05)
            assert (state["webhook_url"], state["webhook_deliveries"]) == (hook.url, 1)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
