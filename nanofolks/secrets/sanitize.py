"""The last line: one function every way out uses (logs, the message store, tool outputs, model inputs,
exception text, `config list`).

Known secrets (the vault's values, the config's credentials) become their reference, `{{name}}`, or
`***` when they have no name; anything else that looks like a secret becomes `[redacted <kind>]`."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

from nanofolks.secrets.detect import find

MIN_KNOWN = 6  # shorter values would mask ordinary words
CACHED_CHARS = 20_000  # a model request repeats the room's history at every call: short texts are remembered

_lock = threading.Lock()
_known: dict[str, str] = {}  # value -> what replaces it
_order: list[str] = []  # the values, longest first (a value containing another is replaced whole)


def remember(value: str, replacement: str = "***") -> None:
    """Teach the sanitizer a secret's value; from now on it never leaves in clear."""
    if len(value) < MIN_KNOWN:
        return
    global _order
    with _lock:
        _known[value] = replacement
        _order = sorted(_known, key=len, reverse=True)
        _sanitized.cache_clear()  # an answer given before this value was known may hold it


def sanitize(text: str) -> str:
    """`text` with every known secret replaced by its reference and every other detected one redacted."""
    if not text:
        return text
    return _sanitized(text) if len(text) <= CACHED_CHARS else _sanitize(text)


@lru_cache(maxsize=4096)
def _sanitized(text: str) -> str:
    return _sanitize(text)


def _sanitize(text: str) -> str:
    for value in _order:
        if value in text:
            text = text.replace(value, _known.get(value, "***"))
    findings = find(text)
    if not findings:
        return text
    out, at = [], 0
    for finding in findings:
        out += [text[at:finding.start], f"[redacted {finding.kind}]"]
        at = finding.end
    out.append(text[at:])
    return "".join(out)


def sanitize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A model request's messages with their text sanitized (copies; the caller's list is untouched)."""
    clean = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            fixed = sanitize(content)
            message = {**message, "content": fixed} if fixed != content else message
        clean.append(message)
    return clean


class SanitizeFilter(logging.Filter):
    """A logging filter: the message (with its arguments) and any traceback pass through sanitize()."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = sanitize(text)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = sanitize(record.exc_text)
        return True
