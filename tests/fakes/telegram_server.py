"""Loopback Telegram Bot API server for tests (stdlib only).

The REAL python-telegram-bot talks to it over HTTP exactly as to api.telegram.org::

    with FakeTelegram() as tg:
        bot = telegram.Bot(tg.token, base_url=f"{tg.api_base}/bot")
        tg.push_message(42, "hello")            # a user writes to the bot
        ...                                     # the app polls getUpdates and replies
        assert tg.wait_for_sent(1)[0]["text"] == "Aye!"

Requests go to ``{api_base}/bot{token}/{method}`` (GET or POST; query string, JSON, form-urlencoded or
multipart bodies). Answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": ..., "parameters": {"retry_after": S}}`` with the same HTTP status. Validation follows the Bot
API: HTML is checked with TDLib's rules and error texts (byte offsets), lengths are counted in UTF-16 units after
entity parsing, unknown chats are "chat not found" (a chat becomes known when a message from it is pushed).

After ``setWebhook`` a thread POSTs each pending update to the webhook URL, as Telegram does: JSON, one update
per request, lowest update_id first, with ``X-Telegram-Bot-Api-Secret-Token`` when a secret was set. A 2xx answer
confirms the update; anything else leaves it pending, shows in getWebhookInfo's ``last_error_*`` and is retried
``webhook_retry`` seconds later. Every attempt lands in ``webhook_deliveries``. Plain http:// is accepted for
loopback hosts only (Telegram wants https).

CLI (for benches and tests that run the app in another process)::

    python -m tests.fakes.telegram_server --port 0

prints ``READY http://127.0.0.1:PORT TOKEN`` and serves until killed. Other processes drive it with
``POST /_control/push`` (JSON: ``push_message`` keyword arguments), ``GET /_control/sent``, ``GET /_control/state``
and ``POST /_control/{push_raw_update,redeliver,fail_next,delay_next,drop_next}`` (JSON keyword arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import http.client
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.serve import serve_until_signalled

MAX_TEXT_UTF16 = 4096
DEFAULT_GROUP_USER = 4242  # sender of pushed group messages when no user_id is given
FIRST_UPDATE_ID = 10_000  # real update ids are large; never let an app assume they start at 1
WEBHOOK_TIMEOUT = 10.0  # seconds a webhook POST may take before it counts as failed
_WEBHOOK_PORTS = (None, 80, 88, 443, 8443)  # the only ports Telegram posts to (None: the scheme's default)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})  # where tests' plain-http receivers listen
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class ApiError(Exception):
    """A Bot API error answer."""

    def __init__(self, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict:
        data: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            data["parameters"] = {"retry_after": self.retry_after}
        return data


# --------------------------------------------------------------------------- HTML (TDLib's parse_html)


class HtmlParseError(ValueError):
    """Why Telegram "can't parse entities" (TDLib's wording; offsets are bytes of the UTF-8 text)."""


_SIMPLE_ENTITIES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_HTML_TAGS = frozenset(_SIMPLE_ENTITIES) | {"a", "code", "pre", "blockquote", "tg-emoji"}
_NAMED_REFS = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_SPACE = frozenset(b" \t\r\n\v\f\0")  # TDLib counts NUL (= end of text) as space
_LT, _GT, _AMP, _SLASH, _EQ = b"<>&/="


def _at(data: bytes, i: int) -> int:
    """Byte i, or 0 past the end (TDLib reads a NUL-terminated string)."""
    return data[i] if i < len(data) else 0


def _decode_ref(data: bytes, pos: int) -> tuple[int, int] | None:
    """&lt; &gt; &amp; &quot; &#N; &#xH; (';' optional) -> (code point, end); None: the '&' stays literal."""
    end = pos + 1
    if _at(data, end) == ord("#"):
        hexa = _at(data, end + 1) == ord("x")
        end += 2 if hexa else 1
        start = end
        digits = b"0123456789abcdefABCDEF" if hexa else b"0123456789"
        while end < len(data) and data[end] in digits:
            end += 1
        if end == start or end - pos >= 10:
            return None
        code = int(data[start:end], 16 if hexa else 10)
        if code == 0 or code >= 0x10FFFF:
            return None
    else:
        start = end
        while data[end : end + 1].isalpha():
            end += 1
        name = _NAMED_REFS.get(data[start:end])
        if name is None:
            return None
        code = ord(name)
    if _at(data, end) == ord(";"):
        end += 1
    return code, end


def _attr_value(data: bytes, i: int) -> tuple[str, int]:
    """An unquoted name token (lowercased) or a quoted string with references decoded."""
    quote = _at(data, i)
    if quote not in b"'\"":
        start = i
        while data[i : i + 1].isalnum() or _at(data, i) in b".-":
            i += 1
        if _at(data, i) not in _SPACE and _at(data, i) != _GT:
            raise HtmlParseError(f"Unexpected end of name token at byte offset {start}")
        return data[start:i].decode("utf-8", "replace").lower(), i
    i += 1
    value = bytearray()
    while _at(data, i) not in (quote, 0):
        ref = _decode_ref(data, i) if data[i] == _AMP else None
        if ref is not None:
            value += chr(ref[0]).encode("utf-8", "surrogatepass")
            i = ref[1]
        else:
            value.append(data[i])
            i += 1
    if _at(data, i) == quote:
        i += 1
    return value.decode("utf-8", "replace"), i


def _start_tag(data: bytes, begin: int) -> tuple[str, str, int]:
    """Parse the start tag at data[begin] == '<' -> (tag, argument, index of its '>')."""
    i = begin + 1
    while _at(data, i) not in _SPACE and _at(data, i) != _GT:
        i += 1
    if _at(data, i) == 0:
        raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
    tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
    if tag not in _HTML_TAGS:
        raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
    argument = ""
    while _at(data, i) != _GT:
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) == _GT:
            break
        name_start = i
        while _at(data, i) not in _SPACE and _at(data, i) not in b"=>/\"'":
            i += 1
        attribute = data[name_start:i].decode("utf-8", "replace")
        if not attribute:
            raise HtmlParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) != _EQ:
            if _at(data, i) == 0:
                raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            if (tag, attribute) == ("blockquote", "expandable"):
                argument = "1"
            continue
        i += 1
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) == 0:
            raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        value, i = _attr_value(data, i)
        if _at(data, i) == 0:
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
        if (tag, attribute) in (("a", "href"), ("tg-emoji", "emoji-id")):
            argument = value
        elif (tag, attribute) == ("code", "class") and value.startswith("language-"):
            argument = value[len("language-") :]
        elif (tag, attribute) == ("span", "class") and value.startswith("tg-"):
            argument = value[len("tg-") :]
    if tag == "span" and argument != "spoiler":
        raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    return tag, argument, i


def _add_entity(entities: list[dict], tag: str, argument: str, offset: int, length: int, inner: str) -> None:
    entity: dict[str, Any] = {"type": _SIMPLE_ENTITIES.get(tag, tag), "offset": offset, "length": length}
    last = entities[-1] if entities else None
    if tag == "a":
        url = argument or inner
        if not url:
            return
        entity.update(type="text_link", url=url)
    elif tag == "code" and argument:
        entity["language"] = argument
    elif tag == "pre" and last and last["type"] == "code" and "language" in last:
        if (last["offset"], last["length"]) == (offset, length):  # <pre><code class="language-x">
            last["type"] = "pre"
            return
    elif tag == "blockquote" and argument:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        if not argument.isdigit() or int(argument) <= 0:
            raise HtmlParseError("Invalid custom emoji identifier specified")
        entity.update(type="custom_emoji", custom_emoji_id=argument)
    entities.append(entity)


def parse_html(html: str) -> tuple[str, list[dict]]:
    """Telegram's HTML parse mode: (plain text, entities with UTF-16 offsets), or HtmlParseError."""
    data = html.encode("utf-8", "surrogatepass")
    out = bytearray()
    entities: list[dict] = []
    stack: list[tuple[str, str, int, int]] = []  # (tag, argument, utf-16 offset, position in out)
    u16 = 0
    i = 0
    while i < len(data):
        c = data[i]
        ref = _decode_ref(data, i) if c == _AMP else None
        if ref is not None:
            code, i = ref
            if 0xD800 <= code <= 0xDFFF:
                raise HtmlParseError("Text contains invalid Unicode characters after decoding HTML entities")
            out += chr(code).encode("utf-8")
            u16 += 2 if code > 0xFFFF else 1
            continue
        if c != _LT:
            out.append(c)
            if c & 0xC0 != 0x80:  # first byte of a character; 4-byte ones are surrogate pairs
                u16 += 2 if c >= 0xF0 else 1
            i += 1
            continue
        begin = i
        if _at(data, i + 1) != _SLASH:
            tag, argument, i = _start_tag(data, begin)
            stack.append((tag, argument, u16, len(out)))
            i += 1
            continue
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {begin}")
        i += 2
        while _at(data, i) not in _SPACE and _at(data, i) != _GT:
            i += 1
        end_tag = data[begin + 2 : i].decode("utf-8", "replace").lower()
        while _at(data, i) != 0 and _at(data, i) in _SPACE:
            i += 1
        if _at(data, i) != _GT:
            raise HtmlParseError(f"Unclosed end tag at byte offset {begin}")
        i += 1
        tag, argument, offset, position = stack.pop()
        if end_tag and end_tag != tag:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", found "</{end_tag}>"'
            )
        if u16 > offset:
            _add_entity(
                entities, tag, argument, offset, u16 - offset, out[position:].decode("utf-8", "replace")
            )
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)  # a language counts only inside <pre>
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return out.decode("utf-8"), entities


def render_text(text: str, parse_mode: str | None) -> tuple[str, list[dict]]:
    """The text and entities Telegram would store for a message, or the ApiError it would answer."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            plain, entities = parse_html(text)
        except HtmlParseError as exc:
            raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    elif mode in ("", "markdown", "markdownv2"):  # Markdown syntax is not checked (the app sends HTML)
        plain, entities = text, []
    else:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    stripped = plain.strip()  # Telegram trims surrounding whitespace before counting
    if not stripped:
        raise ApiError(400, "Bad Request: message text is empty")
    size = utf16_len(stripped)
    if size > MAX_TEXT_UTF16:
        raise ApiError(400, "Bad Request: message is too long")
    lead = utf16_len(plain[: len(plain) - len(plain.lstrip())])
    kept = []
    for entity in entities:
        start, end = max(entity["offset"] - lead, 0), min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --------------------------------------------------------------------------- request parameters

_INT_PARAMS = {
    "chat_id",
    "message_id",
    "reply_to_message_id",
    "offset",
    "limit",
    "timeout",
    "message_thread_id",
    "max_connections",
}
_BOOL_PARAMS = {
    "drop_pending_updates",
    "disable_notification",
    "protect_content",
    "allow_sending_without_reply",
}
_JSON_PARAMS = {
    "reply_parameters",
    "link_preview_options",
    "entities",
    "reply_markup",
    "allowed_updates",
    "commands",
    "scope",
}
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}\b")
_BOT_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?\b")


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """Parameters from a JSON, form-urlencoded or multipart body (values of the last two are strings)."""
    if not body:
        return {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: can't parse JSON request body")
        return data
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if name and part.get_filename():
                params[name] = {"filename": part.get_filename(), "size": len(payload)}
            elif name:
                params[name] = payload.decode("utf-8", "replace")
        return params
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _coerce(params: dict[str, Any]) -> dict[str, Any]:
    """Typed values from string parameters, as Telegram reads them (python-telegram-bot sends JSON in forms)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str):
            if key in _JSON_PARAMS:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ApiError(
                        400, f"Bad Request: can't parse {key.replace('_', ' ')} JSON object"
                    ) from None
            elif key in _INT_PARAMS and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
            elif key in _BOOL_PARAMS:
                value = value.strip().lower() in ("true", "1")
        out[key] = value
    return out


def _int_param(params: dict, key: str, default: int | None = None) -> int | None:
    value = params.get(key, default)
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ApiError(400, f"Bad Request: wrong parameter {key} in request")


def _auto_entities(text: str) -> list[dict]:
    """mention and bot_command entities, as Telegram adds them to a user's message (UTF-16 offsets)."""
    found = [("mention", m) for m in _MENTION_RE.finditer(text)]
    found += [("bot_command", m) for m in _BOT_COMMAND_RE.finditer(text)]
    entities = [
        {"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
        for kind, m in found
    ]
    return sorted(entities, key=lambda e: e["offset"])


def _check_webhook_url(url: str) -> None:
    """The ApiError Telegram answers for a URL it would not post to (plain http passes for loopback)."""
    parts = urlsplit(url)
    loopback = parts.hostname in _LOOPBACK_HOSTS
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0 or port not in _WEBHOOK_PORTS and not loopback:
        raise ApiError(
            400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
        )


def _post_update(url: str, update: dict, secret_token: str | None) -> tuple[int | str, str | None]:
    """POST one update as Telegram does -> (HTTP status or error text, last_error_message or None)."""
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=WEBHOOK_TIMEOUT)  # never a proxy
    headers = {"Content-Type": "application/json"}
    if secret_token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, json.dumps(update).encode("utf-8"), headers)
        response = connection.getresponse()
        response.read()
    except ConnectionRefusedError:
        return "Connection refused", "Connection refused"
    except TimeoutError:
        return "Read timeout expired", "Read timeout expired"
    except socket.gaierror as exc:
        error = f"Failed to resolve host: {exc.strerror}"
        return error, error
    except (OSError, http.client.HTTPException) as exc:
        error = str(exc) or type(exc).__name__
        return error, error
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return response.status, None
    return response.status, f"Wrong response from the webhook: {response.status} {response.reason}"


# --------------------------------------------------------------------------- server


class FakeTelegram:
    """Threaded fake Bot API server on 127.0.0.1. Use as a context manager or start()/stop(). Thread-safe."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "crew_bot",
        bot_id: int = 999,
        port: int = 0,
        webhook_retry: float = 0.2,
    ):
        """webhook_retry: seconds before a failed webhook delivery is tried again (Telegram waits longer)."""
        self.token = token
        self.bot_username = bot_username
        self.bot_id = bot_id
        self.api_base = ""
        self.sent: list[dict] = []  # accepted sendMessage / editMessageText, in order
        self.calls: list[tuple[str, dict]] = []  # every Bot API request, failed ones included
        self.dropped: list[dict] = []  # requests answered by closing the connection (drop_next)
        self.webhook: dict[str, Any] = {}  # last setWebhook parameters ({} when none)
        self.webhook_deliveries: list[tuple[int, int | str]] = []  # (update_id, HTTP status or error text)
        self.webhook_retry = webhook_retry
        self.allowed_updates: list[str] | None = None  # last allowed_updates given to getUpdates
        self._port = port
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._updates: dict[int, dict] = {}  # every update ever pushed
        self._pending: dict[int, bool] = {}  # unconfirmed update id -> redelivered and not yet returned
        self._next_update_id = FIRST_UPDATE_ID
        self._confirmed = 0
        self._poll_generation = 0  # a newer getUpdates ends the waiting one with 409, as Telegram does
        self._webhook_error: tuple[int, str] | None = None  # (unix time, message) of the last failed delivery
        self._delivery: threading.Thread | None = None  # posts updates while a webhook is set
        self._chats: dict[int, dict] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._next_message_id: dict[int, int] = {}
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._failures: dict[str, deque[ApiError]] = {}
        self._delays: dict[str, deque[float]] = {}
        self._drops: dict[str, int] = {}
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, Callable[[dict], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "close": lambda params: True,
            "logOut": lambda params: True,
        }
        self._method_names = {name.lower(): name for name in self._handlers}  # Telegram ignores case

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> FakeTelegram:
        owner = self

        class Handler(_Handler):
            fake = owner

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self.api_base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="FakeTelegram", daemon=True
        )  # a short poll interval keeps stop() (every test's teardown) quick
        self._thread.start()
        with self._cond:
            self._start_delivery()  # a webhook set before a stop() resumes
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()  # ends long polls
            connections = list(self._connections)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for conn in connections:  # keep-alive clients see the server go away
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._cond:
            delivery = self._delivery
        if delivery is not None:
            delivery.join(timeout=WEBHOOK_TIMEOUT)  # it ends after its current POST

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what users do ----------------------------------------------------------
    def push_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        username: str | None = None,
        first_name: str = "User",
        chat_type: str = "private",
        chat_title: str | None = None,
        reply_to_bot: bool = False,
        reply_to_message_id: int | None = None,
        entities: list[dict] | None = None,
    ) -> int:
        """A user's text message as a `message` update; returns its update_id.

        The user is the chat itself in a private chat (DEFAULT_GROUP_USER in groups) unless user_id is given.
        Without `entities`, mention (@name) and bot_command (/cmd) entities are added as Telegram does.
        reply_to_bot replies to the bot's last message in the chat (one is made up if it has none).
        """
        sender: dict[str, Any] = {
            "id": user_id
            if user_id is not None
            else (chat_id if chat_type == "private" else DEFAULT_GROUP_USER),
            "is_bot": False,
            "first_name": first_name,
        }
        if username:
            sender["username"] = username
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
            if username:
                chat["username"] = username
        with self._cond:
            if chat_type != "private":  # a group keeps its title unless a new one is given
                chat["title"] = chat_title or self._chats.get(chat_id, {}).get("title") or f"Group {chat_id}"
            self._chats[chat_id] = chat
            replied = None
            if reply_to_message_id is not None:
                replied = self._messages.get((chat_id, reply_to_message_id))
                if replied is None:
                    raise ValueError(f"no message {reply_to_message_id} in chat {chat_id} to reply to")
            elif reply_to_bot:
                replied = self._last_bot_message(chat_id)
            message: dict[str, Any] = {
                "message_id": self._new_message_id(chat_id),
                "from": sender,
                "chat": chat,
                "date": int(time.time()),
                "text": text,
            }
            found = _auto_entities(text) if entities is None else entities
            if found:
                message["entities"] = found
            if replied is not None:
                message["reply_to_message"] = _shallow(replied)
            self._messages[(chat_id, message["message_id"])] = message
            return self._enqueue({"message": message})

    def push_raw_update(self, update: dict) -> int:
        """Queue any update as given (odd or malformed ones too); an int update_id is kept, else one is set."""
        with self._cond:
            update = dict(update)
            if not isinstance(update.get("update_id"), int):
                update.pop("update_id", None)
                return self._enqueue(update)
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self._updates[update["update_id"]] = update
            self._pending[update["update_id"]] = False
            self._cond.notify_all()
            return update["update_id"]

    def redeliver(self, update_id: int) -> None:
        """Put a confirmed update back: the next getUpdates returns it whatever its offset says (with a
        webhook set, it is posted again)."""
        with self._cond:
            if update_id not in self._updates:
                raise ValueError(f"unknown update_id {update_id}")
            self._pending[update_id] = True
            self._cond.notify_all()

    def message_id_of(self, update_id: int) -> int:
        """message_id of the message carried by a pushed update."""
        with self._cond:
            return self._updates[update_id]["message"]["message_id"]

    # -- fault injection --------------------------------------------------------
    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        description: str = "Too Many Requests: retry after 1",
        retry_after: int | None = 1,
        count: int = 1,
    ) -> None:
        """Answer the next `count` calls of `method` with this error, without doing anything."""
        name = self._canonical(method)
        with self._cond:
            queue = self._failures.setdefault(name, deque())
            queue.extend(ApiError(status, description, retry_after) for _ in range(count))

    def delay_next(self, method: str, seconds: float, count: int = 1) -> None:
        """Wait `seconds` before handling the next `count` calls (they still take effect, even if the client
        gave up meanwhile: a timed-out send may have been delivered)."""
        name = self._canonical(method)
        with self._cond:
            self._delays.setdefault(name, deque()).extend([seconds] * count)

    def drop_next(self, method: str, count: int = 1) -> None:
        """Handle the next `count` calls, then close the connection without answering (recorded in `dropped`;
        an accepted sendMessage is in `sent`, as a real server would have delivered it)."""
        name = self._canonical(method)
        with self._cond:
            self._drops[name] = self._drops.get(name, 0) + count

    # -- inspection -------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
        """Block until predicate() is true (checked whenever the server's state changes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; sent: {self.sent!r}"
                    )
                self._cond.wait(min(remaining, 0.5))

    def wait_for_sent(self, n: int, timeout: float = 30.0) -> list[dict]:
        """Block until at least n messages were accepted; returns a copy of `sent`."""
        self.wait_for(lambda: len(self.sent) >= n, timeout, f"{n} sent message(s)")
        with self._cond:
            return list(self.sent)

    def confirmed_offset(self) -> int:
        """Highest offset a getUpdates call has confirmed (0 before any)."""
        with self._cond:
            return self._confirmed

    def pending_updates(self) -> list[int]:
        """update_ids not yet confirmed."""
        with self._cond:
            return sorted(self._pending)

    def commands(self, scope: dict | None = None, language_code: str = "") -> list[dict]:
        """Commands currently set by setMyCommands (default scope unless given)."""
        with self._cond:
            return list(self._commands.get(_commands_key(scope, language_code), []))

    def count(self, method: str) -> int:
        name = self._canonical(method)
        with self._cond:
            return sum(1 for called, _ in self.calls if called == name)

    # -- internals (callers hold self._cond) ------------------------------------
    def _canonical(self, method: str) -> str:
        name = self._method_names.get(method.lower())
        if name is None:
            raise ValueError(f"unknown Bot API method {method!r}; known: {sorted(self._handlers)}")
        return name

    def _enqueue(self, update: dict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._updates[update_id] = {"update_id": update_id, **update}
        self._pending[update_id] = False
        self._cond.notify_all()
        return update_id

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _bot_user(self) -> dict:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Crew", "username": self.bot_username}

    def _start_delivery(self) -> None:
        """Start the webhook delivery thread unless it runs (it ends itself once the URL is cleared)."""
        if self.webhook.get("url") and self._delivery is None and not self._stopping.is_set():
            self._delivery = threading.Thread(target=self._deliver, name="FakeTelegram webhook", daemon=True)
            self._delivery.start()

    # -- webhook delivery (its own thread) ---------------------------------------
    def _deliver(self) -> None:
        """POST pending updates to the webhook one at a time, lowest update_id first, until it is removed."""
        retry_at = 0.0
        while True:
            with self._cond:
                while True:
                    url = self.webhook.get("url")
                    if not url or self._stopping.is_set():
                        self._delivery = None  # under the lock: a new setWebhook starts a fresh thread
                        self._cond.notify_all()
                        return
                    # setWebhook clears the error: a fresh webhook is tried at once
                    wait = retry_at - time.monotonic() if self._webhook_error else 0.0
                    if self._pending and wait <= 0:
                        break
                    self._cond.wait(wait if self._pending else None)  # a push or setWebhook notifies
                update_id = min(self._pending)
                self._pending[update_id] = False  # a redeliver() during the POST sets it again
                update, secret_token = self._updates[update_id], self.webhook.get("secret_token")
            outcome, error = _post_update(url, update, secret_token)
            with self._cond:
                self.webhook_deliveries.append((update_id, outcome))
                if error is None:
                    if self._pending.get(update_id) is False:
                        del self._pending[update_id]
                    retry_at = 0.0
                else:
                    self._webhook_error = (int(time.time()), error)
                    retry_at = time.monotonic() + self.webhook_retry
                self._cond.notify_all()

    def _last_bot_message(self, chat_id: int) -> dict:
        ours = [
            m for (chat, _), m in self._messages.items() if chat == chat_id and m["from"]["id"] == self.bot_id
        ]
        if ours:
            return ours[-1]
        message = {
            "message_id": self._new_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chats[chat_id],
            "date": int(time.time()),
            "text": "(earlier message)",
        }
        self._messages[(chat_id, message["message_id"])] = message
        return message

    # -- HTTP entry point -------------------------------------------------------
    def _serve(self, path: str, query: dict, content_type: str, body: bytes) -> tuple[int, dict | None]:
        """(status, JSON answer) for one Bot API request; None: close without answering."""
        match = re.fullmatch(r"/bot([^/]*)/([A-Za-z]*)", path)
        if match is None:
            return 404, ApiError(404, "Not Found").body()
        token, requested = match.groups()
        method = self._method_names.get(requested.lower(), requested)
        error: ApiError | None = None
        try:
            params = _coerce({**query, **_parse_body(content_type, body)})
        except ApiError as exc:
            params, error = dict(query), exc
        with self._cond:
            self.calls.append((method, params))
            self._cond.notify_all()
            if token != self.token:
                return 401, ApiError(401, "Unauthorized").body()
            if method not in self._handlers:
                return 404, ApiError(404, "Not Found").body()
            if error is not None:
                return error.code, error.body()
            failures = self._failures.get(method)
            if failures:
                failure = failures.popleft()
                return failure.code, failure.body()
            delays = self._delays.get(method)
            delay = delays.popleft() if delays else 0.0
            drop = self._drops.get(method, 0) > 0
            if drop:
                self._drops[method] -= 1
        if delay:
            self._stopping.wait(delay)
        try:
            status, answer = 200, {"ok": True, "result": self._handlers[method](params)}
        except ApiError as exc:
            status, answer = exc.code, exc.body()
        if drop:
            with self._cond:
                self.dropped.append({"method": method, "params": params, "status": status})
                self._cond.notify_all()
            return status, None
        return status, answer

    def _control(self, verb: str, name: str, body: bytes) -> tuple[int, dict]:
        """The small control API other processes use (see the module docstring)."""
        if verb == "GET" and name == "sent":
            with self._cond:
                return 200, {"ok": True, "result": list(self.sent)}
        if verb == "GET" and name == "state":
            with self._cond:
                counts: dict[str, int] = {}
                for method, _ in self.calls:
                    counts[method] = counts.get(method, 0) + 1
                state = {
                    "confirmed_offset": self._confirmed,
                    "pending": sorted(self._pending),
                    "counts": counts,
                    "webhook_url": self.webhook.get("url", ""),
                    "webhook_deliveries": len(self.webhook_deliveries),
                }
            return 200, {"ok": True, "result": state}
        actions = {
            "push": self.push_message,
            "push_raw_update": self.push_raw_update,
            "redeliver": self.redeliver,
            "fail_next": self.fail_next,
            "delay_next": self.delay_next,
            "drop_next": self.drop_next,
        }
        if verb != "POST" or name not in actions:
            return 404, ApiError(404, "Not Found").body()
        try:
            kwargs = json.loads(body or b"{}")
            if not isinstance(kwargs, dict):
                raise ValueError("the body must be a JSON object of keyword arguments")
            return 200, {"ok": True, "result": actions[name](**kwargs)}
        except (TypeError, ValueError) as exc:
            return 400, ApiError(400, f"Bad Request: {exc}").body()

    # -- Bot API methods (called without the lock) ------------------------------
    def _get_me(self, params: dict) -> dict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _get_updates(self, params: dict) -> list[dict]:
        offset = _int_param(params, "offset")
        limit = min(max(_int_param(params, "limit", 100) or 100, 1), 100)
        timeout = params.get("timeout") or 0
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            raise ApiError(400, "Bad Request: wrong parameter timeout in request")
        deadline = time.monotonic() + timeout
        with self._cond:
            if self.webhook.get("url"):
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()
            if "allowed_updates" in params:
                self.allowed_updates = params["allowed_updates"]
            self._confirm(offset)
            while True:
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
                ids = sorted(self._pending)[:limit]
                remaining = deadline - time.monotonic()
                if ids or remaining <= 0 or self._stopping.is_set():
                    for update_id in ids:
                        self._pending[update_id] = False
                    return [self._updates[update_id] for update_id in ids]
                self._cond.wait(remaining)

    def _confirm(self, offset: int | None) -> None:
        if offset is None:
            return
        if offset < 0:  # -N: keep only the last N updates, forget the rest
            for update_id in sorted(self._pending)[:offset]:
                del self._pending[update_id]
            return
        for update_id, redelivered in list(self._pending.items()):
            if update_id < offset and not redelivered:
                del self._pending[update_id]
        self._confirmed = max(self._confirmed, offset)

    def _set_webhook(self, params: dict) -> bool:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise ApiError(400, "Bad Request: wrong parameter url in request")
        if url:
            _check_webhook_url(url)
        secret_token = params.get("secret_token")
        if secret_token is not None and not _SECRET_TOKEN_RE.fullmatch(str(secret_token)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        with self._cond:
            self.webhook = dict(params) if url else {}
            self._webhook_error = None
            if params.get("drop_pending_updates"):
                self._pending.clear()
            self._start_delivery()
            self._cond.notify_all()  # a running delivery thread picks up the new URL (or ends)
        return True

    def _delete_webhook(self, params: dict) -> bool:
        with self._cond:
            self.webhook = {}
            self._webhook_error = None
            if params.get("drop_pending_updates"):
                self._pending.clear()
            self._cond.notify_all()  # ends the delivery thread
        return True

    def _get_webhook_info(self, params: dict) -> dict:
        with self._cond:
            info = {
                "url": self.webhook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            }
            if self._webhook_error is not None:  # kept after later successes, as Telegram does
                info["last_error_date"], info["last_error_message"] = self._webhook_error
            if self.webhook.get("max_connections") is not None:
                info["max_connections"] = self.webhook["max_connections"]
            if self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
            return info

    def _chat(self, params: dict) -> dict:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        with self._cond:
            chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _send_message(self, params: dict) -> dict:
        chat = self._chat(params)
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise ApiError(400, "Bad Request: message text is empty")
        plain, entities = render_text(text, params.get("parse_mode"))
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            reply_id, lenient = reply.get("message_id"), bool(reply.get("allow_sending_without_reply"))
        else:
            reply_id, lenient = (
                _int_param(params, "reply_to_message_id"),
                bool(params.get("allow_sending_without_reply")),
            )
        with self._cond:
            replied = self._messages.get((chat["id"], reply_id)) if reply_id is not None else None
            if reply_id is not None and replied is None and not lenient:
                raise ApiError(400, "Bad Request: message to be replied not found")
            message: dict[str, Any] = {
                "message_id": self._new_message_id(chat["id"]),
                "from": self._bot_user(),
                "chat": chat,
                "date": int(time.time()),
                "text": plain,
            }
            if entities:
                message["entities"] = entities
            if replied is not None:
                message["reply_to_message"] = _shallow(replied)
            self._messages[(chat["id"], message["message_id"])] = message
            self._record_sent("sendMessage", params, message, replied)
            return message

    def _edit_message_text(self, params: dict) -> dict:
        chat = self._chat(params)
        message_id = _int_param(params, "message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise ApiError(400, "Bad Request: message text is empty")
        plain, entities = render_text(text, params.get("parse_mode"))
        with self._cond:
            old = self._messages.get((chat["id"], message_id))
            if old is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            if old["from"]["id"] != self.bot_id:
                raise ApiError(400, "Bad Request: message can't be edited")
            if old["text"] == plain and old.get("entities", []) == entities:
                raise ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            message = {**old, "text": plain, "edit_date": int(time.time())}
            message.pop("entities", None)
            if entities:
                message["entities"] = entities
            self._messages[(chat["id"], message_id)] = message
            self._record_sent("editMessageText", params, message, None)
            return message

    def _record_sent(self, method: str, params: dict, message: dict, replied: dict | None) -> None:
        self.sent.append(
            {
                "method": method,
                "chat_id": message["chat"]["id"],
                "text": params["text"],
                "parse_mode": params.get("parse_mode"),
                "message_id": message["message_id"],
                "reply_to_message_id": replied["message_id"] if replied else None,
                "plain": message["text"],
                "entities": message.get("entities", []),
            }
        )
        self._cond.notify_all()

    def _send_chat_action(self, params: dict) -> bool:
        self._chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _set_my_commands(self, params: dict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        cleaned = [{"command": c["command"], "description": c["description"]} for c in commands]
        with self._cond:
            self._commands[_commands_key(params.get("scope"), params.get("language_code", ""))] = cleaned
            self._cond.notify_all()
        return True

    def _get_my_commands(self, params: dict) -> list[dict]:
        return self.commands(params.get("scope"), params.get("language_code", ""))

    def _delete_my_commands(self, params: dict) -> bool:
        with self._cond:
            self._commands.pop(_commands_key(params.get("scope"), params.get("language_code", "")), None)
        return True


def _commands_key(scope: dict | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""


def _shallow(message: dict) -> dict:
    """A message as it appears in reply_to_message (Telegram does not nest replies further)."""
    return {k: v for k, v in message.items() if k != "reply_to_message"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTelegram  # set by FakeTelegram.start()
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from api.telegram.org
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add ~40 ms

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._cond:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._cond:
            self.fake._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, verb: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if url.path.startswith("/_control/"):
            status, answer = self.fake._control(verb, url.path[len("/_control/") :], body)
        else:
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            status, answer = self.fake._serve(url.path, query, self.headers.get("Content-Type", ""), body)
        if answer is None:
            self.close_connection = True  # the client never learns whether it worked
            return
        data = json.dumps(answer).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) or the server is stopping
            self.close_connection = True


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback fake Telegram Bot API server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    parser.add_argument("--username", default="crew_bot")
    parser.add_argument("--bot-id", type=int, default=999)
    args = parser.parse_args(argv)

    server = FakeTelegram(args.token, args.username, args.bot_id, args.port).start()
    return serve_until_signalled(f"READY {server.api_base} {server.token}", server.stop)


if __name__ == "__main__":
    sys.exit(main())
