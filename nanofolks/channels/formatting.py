"""Turn a bot's Markdown reply into what each chat platform accepts, and split long replies.

Models write CommonMark-ish Markdown. Telegram wants a small HTML subset, Slack wants
"mrkdwn", WhatsApp its own markers, Discord takes Markdown as is.
Every platform caps the message length, so a reply is split first (never inside a code
fence without closing and reopening it) and each chunk is converted on its own, which
keeps every converted chunk self-contained and well-formed.
"""

from __future__ import annotations

import bisect
import html as _html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DISCORD_LIMIT",
    "SLACK_LIMIT",
    "TELEGRAM_LIMIT",
    "WHATSAPP_LIMIT",
    "markdown_to_slack_mrkdwn",
    "markdown_to_telegram_html",
    "markdown_to_whatsapp",
    "split_for_discord",
    "split_for_slack",
    "split_for_telegram",
    "split_for_whatsapp",
    "split_message",
    "telegram_html_length",
    "telegram_text",
    "utf16_len",
]

TELEGRAM_LIMIT = 4096
DISCORD_LIMIT = 2000
# Slack accepts more, but section blocks stop at 3000 and long posts get truncated: stay safe.
SLACK_LIMIT = 3900
WHATSAPP_LIMIT = 4000  # the bridge splits longer texts itself; staying under it keeps one outbox row = one message


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what Telegram counts)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# ---------------------------------------------------------------------------
# Fenced code blocks (shared by the splitter and the converters)
# ---------------------------------------------------------------------------

# Any indentation is allowed: models put fences inside list items with 4+ spaces.
_FENCE_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class _Fence:
    """A fenced code block located in a text, by line index and character offset."""

    first_line: int
    last_line: int | None  # None when the fence is never closed
    open_start: int  # offset of the opening line
    body_start: int  # offset just after the opening line
    close_start: int  # offset of the closing line (len(text) when unclosed)
    close_end: int  # offset of the end of the closing line (len(text) when unclosed)
    opener: str  # the opening line, reused verbatim when the block is reopened
    closer: str  # indentation + fence characters
    lang: str
    indent: int


def _parse_opener(line: str) -> re.Match[str] | None:
    match = _FENCE_OPEN_RE.match(line)
    # A backtick in the info string means this is inline code such as ```x```.
    if match is None or (match["marker"][0] == "`" and "`" in match["info"]):
        return None
    return match


def _is_closer(line: str, marker: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(marker) and set(stripped) == {marker[0]}


def _find_fences(text: str) -> list[_Fence]:
    """Locate every fenced code block; an unclosed fence runs to the end of the text."""
    fences: list[_Fence] = []
    opening: tuple[int, int, re.Match[str]] | None = None
    offset = 0
    for index, line in enumerate(text.split("\n")):
        if opening is None:
            match = _parse_opener(line)
            if match is not None:
                opening = (index, offset, match)
        elif _is_closer(line, opening[2]["marker"]):
            fences.append(_make_fence(opening, index, offset, offset + len(line), len(text)))
            opening = None
        offset += len(line) + 1
    if opening is not None:
        fences.append(_make_fence(opening, None, len(text), len(text), len(text)))
    return fences


def _make_fence(
    opening: tuple[int, int, re.Match[str]],
    last_line: int | None,
    close_start: int,
    close_end: int,
    text_len: int,
) -> _Fence:
    first_line, offset, match = opening
    info = match["info"].strip()
    return _Fence(
        first_line=first_line,
        last_line=last_line,
        open_start=offset,
        body_start=min(offset + len(match[0]) + 1, text_len),
        close_start=close_start,
        close_end=close_end,
        opener=match[0],
        closer=match["indent"] + match["marker"],
        lang=info.split()[0] if info else "",
        indent=len(match["indent"]),
    )


# ---------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------

_LEADING_BLANK_LINES_RE = re.compile(r"\A(?:[ \t]*\n)+")
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")
_SPACE_RUN_RE = re.compile(r"[ \t]+")


def split_message(text: str, limit: int, length: Callable[[str], int] = len) -> list[str]:
    """Split Markdown into chunks with ``length(chunk) <= limit``.

    Cuts prefer paragraph breaks, then line breaks, then spaces, then a hard cut. A fenced
    code block that has to be cut is closed at the end of the chunk and reopened (same
    language tag) at the start of the next one. Whitespace at the cut points is dropped.
    Raises ValueError if ``limit`` cannot hold even a single character.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    chunks: list[str] = []
    rest = _LEADING_BLANK_LINES_RE.sub("", text.replace("\r\n", "\n"))
    while rest.strip():
        window = _window(rest, limit, length)
        if window is None:
            chunks.append(rest.rstrip())
            break
        chunk, rest = _next_chunk(rest, window, limit, length)
        if chunk:
            chunks.append(chunk)
        rest = _LEADING_BLANK_LINES_RE.sub("", rest)
    return chunks


def _window(rest: str, limit: int, length: Callable[[str], int]) -> str | None:
    """A prefix of ``rest`` that is already too long, or None if all of ``rest`` fits.

    Cut positions are only searched inside it, so a huge reply is not rescanned (and,
    for Telegram, reconverted) in full for every chunk. The prefix doubles until it stops
    fitting and ends on a line end when one is near, so fence lines are never truncated.
    """
    size = limit
    while True:
        end = rest.find("\n", size, size + 256)
        end = min(size, len(rest)) if end == -1 else end
        if length(rest[:end].rstrip()) > limit:
            return rest[:end]
        if end >= len(rest):
            return None
        size = 2 * end


def _next_chunk(rest: str, window: str, limit: int, length: Callable[[str], int]) -> tuple[str, str]:
    """Cut the biggest chunk that fits off ``rest``, at the best kind of boundary available."""
    fences = _find_fences(window)

    def fits(pos: int) -> bool:
        chunk = _head(rest, pos, fences)
        return bool(chunk.strip()) and length(chunk) <= limit

    for candidates in _candidate_levels(window, fences):
        best = _last_fitting(len(candidates), lambda i, cands=candidates: fits(cands[i]))
        if best is not None:
            return _cut(rest, candidates[best], fences)

    # Hard cut. Positions inside a leading fence's opening line are useless (they would
    # produce an empty code block), so start after it.
    first = len(window) - len(window.lstrip()) + 1
    if fences and fences[0].open_start == 0:
        first = max(first, fences[0].body_start + 1)
    best = _last_fitting(len(window) - first, lambda i: fits(_hard_position(window, first + i, fences)))
    if best is not None:
        return _cut(rest, _hard_position(window, first + best, fences), fences)
    return _raw_cut(rest, window, limit, length)


def _raw_cut(rest: str, window: str, limit: int, length: Callable[[str], int]) -> tuple[str, str]:
    """Last resort when even fence-aware hard cuts cannot fit (absurdly small limits)."""
    first = len(window) - len(window.lstrip()) + 1

    def fits(pos: int) -> bool:
        return length(rest[:pos].rstrip()) <= limit

    best = _last_fitting(len(window) - first, lambda i: fits(_grapheme_boundary(window, first + i, first)))
    if best is None:
        if window[:1].isspace():
            return "", rest.lstrip()  # the indentation alone is too long: drop it
        raise ValueError(f"limit {limit} is too small to fit a single character")
    pos = _grapheme_boundary(window, first + best, first)
    return rest[:pos].rstrip(), rest[pos:]


def _candidate_levels(text: str, fences: list[_Fence]) -> list[list[int]]:
    """Cut positions by preference: paragraph, line, space, line inside a code block."""
    lead = len(text) - len(text.lstrip())

    def outside(pos: int) -> bool:
        return lead < pos < len(text) and all(pos <= f.open_start or pos >= f.close_end for f in fences)

    line_starts = [m.end() for m in re.finditer("\n", text)]
    boundaries = [f.open_start for f in fences] + [f.close_end + 1 for f in fences]
    paragraphs = [m.end() for m in _PARAGRAPH_BREAK_RE.finditer(text)] + boundaries
    protected = _inline_spans(text)
    spaces = [m.end() for m in _SPACE_RUN_RE.finditer(text) if not protected.covers(m.end())]
    in_code = [p for p in line_starts if _fence_at(fences, p) is not None and p > lead]
    return [
        sorted({p for p in paragraphs if outside(p)}),
        [p for p in line_starts if outside(p)],
        [p for p in spaces if outside(p)],
        in_code,
    ]


class _Spans:
    """Sorted, merged character spans with a fast "is this position strictly inside" test."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]

    def covers(self, pos: int) -> bool:
        index = bisect.bisect_left(self._starts, pos) - 1
        return index >= 0 and pos < self._ends[index]


def _inline_spans(text: str) -> _Spans:
    """Inline code and links: cutting inside them would turn them into literal text."""
    spans = [m.span() for m in _CODE_SPAN_RE.finditer(text)]
    return _Spans(spans + [m.span() for m in _LINK_RE.finditer(text)])


def _fence_at(fences: list[_Fence], pos: int) -> _Fence | None:
    """The fence whose body strictly contains ``pos`` (a cut there must close/reopen)."""
    for fence in fences:
        if fence.body_start < pos < fence.close_start:
            return fence
    return None


def _head(rest: str, pos: int, fences: list[_Fence]) -> str:
    """The chunk made of ``rest[:pos]``, closing a code block cut at ``pos``."""
    fence = _fence_at(fences, pos)
    if fence is None:
        return rest[:pos].rstrip()
    head = rest[:pos] if rest[pos - 1] == "\n" else rest[:pos] + "\n"
    return head + fence.closer


def _cut(rest: str, pos: int, fences: list[_Fence]) -> tuple[str, str]:
    """Split ``rest`` at ``pos`` into (chunk, remainder), reopening a cut code block."""
    fence = _fence_at(fences, pos)
    tail = rest[pos:] if fence is None else fence.opener + "\n" + rest[pos:]
    return _head(rest, pos, fences), tail


def _hard_position(rest: str, pos: int, fences: list[_Fence]) -> int:
    """Move a hard-cut position off grapheme clusters and fence delimiter lines."""
    fence = _fence_at(fences, pos)
    pos = _grapheme_boundary(rest, pos, fence.body_start + 1 if fence else 1)
    for f in fences:
        if f.open_start < pos <= f.body_start:
            return f.open_start  # never split the opening line
        if f.last_line is not None and f.close_start <= pos < f.close_end:
            return f.close_end  # the closing line belongs with its block
    return pos


def _last_fitting(count: int, fits: Callable[[int], bool]) -> int | None:
    """Largest index in ``range(count)`` that fits, assuming fits is True-then-False.

    Gallops from the start so that the cost tracks the chunk size rather than the size of
    the whole remaining text, which matters when ``fits`` converts the chunk.
    """
    good, probe = -1, 0
    while probe < count and fits(probe):
        good, probe = probe, probe * 2 + 1
    bad = min(probe, count)
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good if good >= 0 else None


def _is_extender(char: str) -> bool:
    """Characters that belong to the previous one: combining marks, ZWJ, emoji modifiers."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == "\u200d"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def _is_regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _splits_cluster(text: str, pos: int) -> bool:
    if pos <= 0 or pos >= len(text):
        return False
    if _is_extender(text[pos]) or text[pos - 1] == "\u200d":
        return True
    if _is_regional(text[pos - 1]) and _is_regional(text[pos]):
        run = 0  # flags are pairs of regional indicators: an odd run means mid-flag
        while pos - run - 1 >= 0 and _is_regional(text[pos - run - 1]):
            run += 1
        return run % 2 == 1
    return False


def _grapheme_boundary(text: str, pos: int, floor: int) -> int:
    """Move ``pos`` left out of a grapheme cluster; keep it if that would pass ``floor``."""
    moved = pos
    while moved > floor and _splits_cluster(text, moved):
        moved -= 1
    return pos if _splits_cluster(text, moved) else moved


# ---------------------------------------------------------------------------
# Markdown conversion
# ---------------------------------------------------------------------------

_CODE_SPAN_RE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_BACKSLASH_RE = re.compile(r"\\([!-/:-@\[-`{-~])")
_LINK_RE = re.compile(
    r"!?\[(?P<label>[^\[\]\n]+)\]"
    r"\((?P<url>(?:[^()\s]|\([^()\s]*\))+)(?:[ \t]+\"[^\"\n]*\")?\)"
)
_BARE_URL_RE = re.compile(r"\b(?:https?|tg)://[^\s<>\"'`*~()\[\]]+")
# Emphasis needs word boundaries so snake_case_names and 2*3*4 stay literal.
_EMPHASIS_RE = re.compile(
    r"(?P<bi>(?<![\w*])\*\*\*(?=[^\s*]).+?(?<=[^\s*])\*\*\*(?![\w*]))"
    r"|(?P<b>(?<![\w*])\*\*(?=[^\s*]).+?(?<=[^\s*])\*\*(?![\w*]))"
    r"|(?P<bu>(?<![\w_])__(?=[^\s_]).+?(?<=[^\s_])__(?![\w_]))"
    r"|(?P<s>(?<!~)~~(?=[^\s~]).+?(?<=[^\s~])~~(?!~))"
    r"|(?P<i>(?<![\w*])\*(?=[^\s*]).+?(?<=[^\s*])\*(?![\w*]))"
    r"|(?P<iu>(?<![\w_])_(?=[^\s_]).+?(?<=[^\s_])_(?![\w_]))"
)
_DELIMITER_LENGTH = {"bi": 3, "b": 2, "bu": 2, "s": 2, "i": 1, "iu": 1}
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_RULE_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET_RE = re.compile(r"^([ \t]*)[-*+][ \t]+(.*)$")
_QUOTE_RE = re.compile(r"^ {0,3}(?:>[ \t]?)+(.*)$")

# Rendered fragments are parked behind NUL-delimited tokens so later regexes skip them.
_SENTINEL = "\x00"
_TOKEN_RE = re.compile(r"\x00(\d+)\x00")


class _Placeholders:
    """Stash of rendered fragments (code, links, URLs) hidden from the emphasis pass."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, rendered: str) -> str:
        self._items.append(rendered)
        return f"{_SENTINEL}{len(self._items) - 1}{_SENTINEL}"

    def restore(self, text: str) -> str:
        # Fragments may contain tokens themselves (code inside a link label).
        while _TOKEN_RE.search(text):
            text = _TOKEN_RE.sub(lambda m: self._items[int(m[1])], text)
        return text


def _has_scheme(url: str, schemes: tuple[str, ...]) -> bool:
    scheme, colon, _ = url.partition(":")
    return bool(colon) and scheme.lower() in schemes


def _dedent(line: str, width: int) -> str:
    """Drop up to ``width`` leading spaces (code inside an indented fence)."""
    strip = len(line) - len(line.lstrip(" \t"))
    return line[min(strip, width) :]


class _Renderer:
    """Markdown to a target markup; subclasses supply the platform's syntax."""

    bold = ("", "")
    italic = ("", "")
    strike = ("", "")
    bullet = "• "
    rule = "──────────"
    link_schemes: tuple[str, ...] = ("http", "https", "mailto")

    # -- platform hooks -----------------------------------------------------
    def escape(self, text: str) -> str:
        return text

    def code_span(self, code: str) -> str:
        return code

    def code_block(self, code: str, lang: str) -> str:
        return code

    def heading(self, rendered: str) -> str:
        return rendered

    def quote(self, lines: list[str]) -> str:
        return "\n".join(f"> {line}".rstrip() for line in lines)

    def link(self, label: str, url: str, store: _Placeholders) -> str | None:
        """Render a link, or None to keep the Markdown as literal text."""
        return None

    # -- blocks -------------------------------------------------------------
    def render(self, markdown: str) -> str:
        text = markdown.replace("\r\n", "\n").replace(_SENTINEL, "")
        lines = text.split("\n")
        out: list[str] = []
        next_line = 0
        for fence in _find_fences(text):
            out.extend(self._render_prose(lines[next_line : fence.first_line]))
            end = fence.last_line if fence.last_line is not None else len(lines)
            body = [_dedent(line, fence.indent) for line in lines[fence.first_line + 1 : end]]
            out.append(self.code_block("\n".join(body), fence.lang))
            next_line = end + 1
        out.extend(self._render_prose(lines[next_line:]))
        return "\n".join(out)

    def _render_prose(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        quoted: list[str] = []
        for line in lines:
            match = _QUOTE_RE.match(line)
            if match:
                quoted.append(self._render_line(match[1]))
                continue
            if quoted:
                out.append(self.quote(quoted))
                quoted = []
            out.append(self._render_line(line))
        if quoted:
            out.append(self.quote(quoted))
        return out

    def _render_line(self, line: str) -> str:
        if _RULE_RE.match(line):
            return self.rule
        heading = _HEADING_RE.match(line)
        if heading:
            # The heading is bold already: nested bold would be redundant (or invalid).
            return self.heading(self.inline(heading[1], bold=False))
        bullet = _BULLET_RE.match(line)
        if bullet:
            return bullet[1] + self.bullet + self.inline(bullet[2])
        return self.inline(line)

    # -- inline -------------------------------------------------------------
    def inline(self, text: str, *, bold: bool = True) -> str:
        """Render one line of inline Markdown."""
        store = _Placeholders()
        return store.restore(self._inline(text.replace(_SENTINEL, ""), store, bold=bold))

    def _inline(self, text: str, store: _Placeholders, *, bold: bool = True) -> str:
        # Order matters: code first (nothing inside it is Markdown), then escapes, links,
        # bare URLs (their underscores are not emphasis), and only then emphasis.
        text = _CODE_SPAN_RE.sub(lambda m: store.add(self.code_span(_trim_code(m[2]))), text)
        text = _BACKSLASH_RE.sub(lambda m: store.add(self.escape(m[1])), text)
        text = _LINK_RE.sub(lambda m: self._link_token(m, store), text)
        text = _BARE_URL_RE.sub(lambda m: store.add(self.escape(m[0])), text)
        return self._emphasis(self.escape(text), bold=bold)

    def _link_token(self, match: re.Match[str], store: _Placeholders) -> str:
        rendered = self.link(match["label"], match["url"], store)
        return store.add(self.escape(match[0]) if rendered is None else rendered)

    def _emphasis(self, text: str, *, bold: bool = True, plain: bool = False) -> str:
        # Each match is rendered as open + recurse(inner) + close, so the output is a
        # tree and tags can never interleave; unmatched markers stay literal.
        parts: list[str] = []
        pos = 0
        for match in _EMPHASIS_RE.finditer(text):
            kind = match.lastgroup or ""
            size = _DELIMITER_LENGTH[kind]
            opening, closing = self._tags(kind, bold=bold, plain=plain)
            inner = self._emphasis(match[0][size:-size], bold=bold, plain=plain)
            parts += [text[pos : match.start()], opening, inner, closing]
            pos = match.end()
        parts.append(text[pos:])
        return "".join(parts)

    def _tags(self, kind: str, *, bold: bool, plain: bool) -> tuple[str, str]:
        if plain:
            return "", ""
        strong = self.bold if bold else ("", "")
        if kind == "bi":
            return strong[0] + self.italic[0], self.italic[1] + strong[1]
        if kind in ("b", "bu"):
            return strong
        return self.strike if kind == "s" else self.italic


def _trim_code(code: str) -> str:
    """CommonMark drops one space on each side of a code span (`` `x` `` style)."""
    if len(code) >= 2 and code[0] == code[-1] == " " and code.strip():
        return code[1:-1]
    return code


class _TelegramRenderer(_Renderer):
    bold = ("<b>", "</b>")
    italic = ("<i>", "</i>")
    strike = ("<s>", "</s>")
    link_schemes = ("http", "https", "tg", "mailto")

    def escape(self, text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def code_span(self, code: str) -> str:
        return f"<code>{self.escape(code)}</code>"

    def code_block(self, code: str, lang: str) -> str:
        lang = re.sub(r"[^\w#+.-]", "", lang)
        if lang:
            return f'<pre><code class="language-{lang}">{self.escape(code)}</code></pre>'
        return f"<pre>{self.escape(code)}</pre>"

    def heading(self, rendered: str) -> str:
        return f"<b>{rendered}</b>"

    def quote(self, lines: list[str]) -> str:
        return "<blockquote>" + "\n".join(lines) + "</blockquote>"

    def link(self, label: str, url: str, store: _Placeholders) -> str | None:
        if not _has_scheme(url, self.link_schemes):
            return None
        href = self.escape(url).replace('"', "&quot;")
        return f'<a href="{href}">{self._inline(label, store)}</a>'


class _SlackRenderer(_Renderer):
    bold = ("*", "*")
    italic = ("_", "_")
    strike = ("~", "~")

    def escape(self, text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def code_span(self, code: str) -> str:
        return f"`{self.escape(code)}`"

    def code_block(self, code: str, lang: str) -> str:
        return f"```\n{self.escape(code)}\n```"  # Slack has no language tags

    def heading(self, rendered: str) -> str:
        return f"*{rendered}*"

    def link(self, label: str, url: str, store: _Placeholders) -> str | None:
        if not _has_scheme(url, self.link_schemes) or any(c in url for c in "|<>"):
            return None
        # Slack does not format inside link labels, so drop the markers.
        return f"<{url}|{self._emphasis(self.escape(label), plain=True)}>"


class _WhatsAppRenderer(_Renderer):
    """WhatsApp's markup: *bold*, _italic_, ~strike~, `code`, ``` blocks (no language tag), > quotes.
    It has no escapes and no link syntax: links become `label (url)`, bare URLs are linked by the app."""

    bold = ("*", "*")
    italic = ("_", "_")
    strike = ("~", "~")

    def code_span(self, code: str) -> str:
        return f"`{code}`"

    def code_block(self, code: str, lang: str) -> str:
        return f"```\n{code}\n```"

    def heading(self, rendered: str) -> str:
        return f"*{rendered}*"

    def link(self, label: str, url: str, store: _Placeholders) -> str | None:
        text = self._inline(label, store)
        return url if label == url else f"{text} ({url})"


_TELEGRAM = _TelegramRenderer()
_SLACK = _SlackRenderer()
_WHATSAPP = _WhatsAppRenderer()


def markdown_to_telegram_html(text: str) -> str:
    """Convert Markdown to Telegram's HTML parse mode (b, i, s, code, pre, a, blockquote)."""
    return _TELEGRAM.render(text)


def markdown_to_slack_mrkdwn(text: str) -> str:
    """Convert Markdown to Slack mrkdwn (``*b*``, ``_i_``, ``~s~``, ``<url|text>``)."""
    return _SLACK.render(text)


def markdown_to_whatsapp(markdown: str) -> str:
    """Convert Markdown to WhatsApp's markup: **b** -> *b*, *i* -> _i_, ~~s~~ -> ~s~, fences kept."""
    return _WHATSAPP.render(markdown)


_TAG_RE = re.compile(r"<[^>]*>")
_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#[xX][0-9a-fA-F]+);")


def telegram_text(html: str) -> str:
    """The text Telegram shows for this HTML: what to send as plain text when it refuses the markup."""
    return _ENTITY_RE.sub(lambda m: _html.unescape(m[0]), _TAG_RE.sub("", html))


def telegram_html_length(html: str) -> int:
    """Length Telegram counts against its limit: UTF-16 units of the text after parsing."""
    return utf16_len(telegram_text(html))


def _telegram_length(chunk: str) -> int:
    return telegram_html_length(markdown_to_telegram_html(chunk))


# The split_for_* functions are the platforms' renderers (channels/registry.py): a reply in, the chunks to
# send out, each converted and within the platform's limit. They run once per reply, before it is queued.


def split_for_telegram(markdown: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split and convert to Telegram HTML, each chunk within ``limit`` as Telegram counts it."""
    return [markdown_to_telegram_html(chunk) for chunk in split_message(markdown, limit, _telegram_length)]


def split_for_discord(markdown: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Split for Discord, which renders Markdown itself."""
    return split_message(markdown, limit)


def split_for_slack(markdown: str, limit: int = SLACK_LIMIT) -> list[str]:
    """Split and convert to Slack mrkdwn, each converted chunk within ``limit``."""
    chunks = split_message(markdown, limit, lambda chunk: len(markdown_to_slack_mrkdwn(chunk)))
    return [markdown_to_slack_mrkdwn(chunk) for chunk in chunks]


def split_for_whatsapp(markdown: str, limit: int = WHATSAPP_LIMIT) -> list[str]:
    """Split and convert to WhatsApp's markup; the bridge (JavaScript) counts UTF-16 units."""
    chunks = split_message(markdown, limit, lambda chunk: utf16_len(markdown_to_whatsapp(chunk)))
    return [markdown_to_whatsapp(chunk) for chunk in chunks]
