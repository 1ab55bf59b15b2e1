"""Tests for nanofolks.channels.formatting: per-platform conversion and fence-aware splitting."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanofolks.channels.formatting import (
    markdown_to_slack_mrkdwn,
    markdown_to_telegram_html,
    markdown_to_whatsapp,
    split_for_discord,
    split_for_slack,
    split_for_telegram,
    split_message,
    telegram_html_length,
    telegram_text,
    utf16_len,
)

# ---------------------------------------------------------------------------
# Independent checkers (deliberately not reusing the module's own parsing)
# ---------------------------------------------------------------------------

_FENCE_LINE_RE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_TELEGRAM_TAGS = {"b", "i", "s", "u", "code", "pre", "a", "blockquote"}
_TELEGRAM_ATTRS = {"a": {"href"}, "code": {"class"}}


def fences_balanced(text: str) -> bool:
    """True when every fence opened in ``text`` is closed again."""
    open_marker: str | None = None
    for line in text.split("\n"):
        match = _FENCE_LINE_RE.match(line)
        if not match:
            continue
        marker, info = match.groups()
        if open_marker is None:
            if not (marker[0] == "`" and "`" in info):
                open_marker = marker
        elif marker[0] == open_marker[0] and len(marker) >= len(open_marker) and not info.strip():
            open_marker = None
    return open_marker is None


def code_lines(text: str) -> list[str]:
    """The lines between fence lines."""
    inside, out = False, []
    for line in text.split("\n"):
        if _FENCE_LINE_RE.match(line):
            inside = not inside
        elif inside:
            out.append(line)
    return out


def drop_fence_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not _FENCE_LINE_RE.match(line))


def squash(text: str) -> str:
    """Text without any whitespace: splitting may only change whitespace at cut points."""
    return "".join(text.split())


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TELEGRAM_TAGS:
            self.problems.append(f"tag not allowed: {tag}")
        extra = {name for name, _ in attrs} - _TELEGRAM_ATTRS.get(tag, set())
        if extra:
            self.problems.append(f"attributes not allowed on {tag}: {extra}")
        if tag == "code" and attrs and self.stack[-1:] != ["pre"]:
            self.problems.append("code class outside pre")
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing tag: {tag}")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> with open {self.stack}")
        else:
            self.stack.pop()


def assert_telegram_html(html: str) -> None:
    """Allowed tags only, properly nested, and no stray < > & outside tags/entities."""
    for tag in re.findall(r"<[^>]*>", html):
        assert re.fullmatch(r'</?(b|i|s|u|code|pre|a|blockquote)(\s+(href|class)="[^"<>]*")?>', tag), tag
    text = re.sub(r"<[^>]*>", "", html)
    assert "<" not in text and ">" not in text, html
    assert re.fullmatch(r"(?:[^&]|&(?:lt|gt|amp|quot);)*", text, re.S), html
    checker = _TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.problems == [], (checker.problems, html)
    assert checker.stack == [], (checker.stack, html)


def test_checker_rejects_bad_html() -> None:
    # The checker itself must be able to fail, or the tests using it prove nothing.
    for bad in ["<b><i>x</b></i>", "<b>x", "<script>x</script>", "a < b", "a & b", "<br/>"]:
        with pytest.raises(AssertionError):
            assert_telegram_html(bad)
    assert_telegram_html('<b>a <i>b</i></b> &amp; <a href="https://x">y</a>')


# ---------------------------------------------------------------------------
# utf16_len / telegram_html_length
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("hello", 5), ("é", 1), ("😀", 2), ("a😀b", 4), ("🇫🇷", 4), ("𝕏", 2)],
)
def test_utf16_len(text: str, expected: int) -> None:
    assert utf16_len(text) == expected


def test_telegram_html_length_counts_parsed_text() -> None:
    assert telegram_html_length("<b>bold</b>") == 4
    assert telegram_html_length("&lt;&gt;&amp;&quot;") == 4
    assert telegram_html_length('<a href="https://example.com/very/long">x</a>') == 1
    assert telegram_html_length('<pre><code class="language-py">😀</code></pre>') == 2
    assert telegram_html_length("a &#128512; b") == 6  # numeric entity of an astral char


# ---------------------------------------------------------------------------
# split_message
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\n"])
def test_split_empty_input(text: str) -> None:
    assert split_message(text, 10) == []


def test_split_short_text_is_one_chunk() -> None:
    assert split_message("\n\nhello world  \n", 100) == ["hello world"]


def test_split_rejects_non_positive_limit() -> None:
    with pytest.raises(ValueError):
        split_message("text", 0)


def test_split_rejects_limit_smaller_than_one_character() -> None:
    # An emoji is 2 UTF-16 units: it cannot fit in 1, and silently exceeding is worse.
    with pytest.raises(ValueError, match="too small"):
        split_message("😀", 1, utf16_len)


def test_split_prefers_paragraphs() -> None:
    text = "alpha beta\ngamma\n\n" + "delta epsilon zeta"
    assert split_message(text, 25) == ["alpha beta\ngamma", "delta epsilon zeta"]


def test_split_prefers_lines_over_spaces() -> None:
    text = "one two\nthree four five six"
    assert split_message(text, 20) == ["one two", "three four five six"]


def test_split_uses_spaces_before_hard_cut() -> None:
    words = " ".join(["word"] * 30)
    chunks = split_message(words, 22)
    assert all(len(c) <= 22 for c in chunks)
    assert all(set(c.split()) == {"word"} for c in chunks)  # no word was cut
    assert squash("".join(chunks)) == squash(words)


def test_split_hard_cuts_a_word_longer_than_limit() -> None:
    word = "x" * 25
    assert split_message(word, 10) == ["x" * 10, "x" * 10, "x" * 5]
    chunks = split_message("short " + "y" * 30, 12)
    assert chunks[0] == "short"
    assert "".join(chunks[1:]) == "y" * 30


def test_split_never_breaks_a_fitting_code_block() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(10)) + "\n```"
    text = "Intro words here.\n\n" + code + "\n\nAnd the end."
    chunks = split_message(text, len(code) + 5)
    assert code in chunks
    assert all(fences_balanced(c) for c in chunks)


def test_split_long_code_block_closes_and_reopens_with_language() -> None:
    lines = [f"value_{i} = compute({i})  # step {i}" for i in range(60)]
    text = "Here is the script:\n\n```python\n" + "\n".join(lines) + "\n```\n\nDone."
    chunks = split_message(text, 300)
    code_chunks = [c for c in chunks if "value_" in c]
    assert len(code_chunks) > 2
    for chunk in chunks:
        assert len(chunk) <= 300
        assert fences_balanced(chunk), chunk
    for chunk in code_chunks:
        assert chunk.startswith("```python\n"), chunk
        assert "\n```" in chunk, chunk  # closed again in the same chunk
    # Every code line survives, intact (the block was cut at line boundaries), in order.
    body = [line for c in code_chunks for line in code_lines(c)]
    assert body == lines
    assert chunks[0] == "Here is the script:"
    assert chunks[-1].endswith("```\n\nDone.")


def test_split_reopens_tilde_and_indented_fences_verbatim() -> None:
    body = "\n".join(f"    step {i}" for i in range(40))
    text = "1. Run this:\n\n    ~~~~bash\n" + body + "\n    ~~~~"
    chunks = split_message(text, 120)
    for chunk in chunks[1:]:
        assert chunk.startswith("    ~~~~bash\n")
        assert chunk.endswith("\n    ~~~~")
        assert fences_balanced(chunk)


def test_split_hard_cut_inside_a_single_huge_code_line() -> None:
    text = "```js\n" + "a" * 100 + "\n```"
    chunks = split_message(text, 40)
    assert all(len(c) <= 40 and fences_balanced(c) for c in chunks)
    assert all(c.startswith("```js\n") and c.endswith("\n```") for c in chunks)
    assert "".join(c.removeprefix("```js\n").removesuffix("\n```") for c in chunks) == "a" * 100


def test_split_unclosed_fence_keeps_going() -> None:
    text = "```py\n" + "\n".join(f"line {i}" for i in range(30))
    chunks = split_message(text, 60)
    assert all(len(c) <= 60 for c in chunks)
    assert all(c.startswith("```py\n") for c in chunks)
    assert squash(drop_fence_lines("\n".join(chunks))) == squash(drop_fence_lines(text))


def test_split_counts_emoji_as_two_utf16_units() -> None:
    text = "😀" * 3000
    chunks = split_message(text, 4096, utf16_len)
    assert [len(c) for c in chunks] == [2048, 952]  # 2048 emoji = 4096 units
    assert all(utf16_len(c) <= 4096 for c in chunks)
    # With the default len() each emoji is one character.
    assert split_message(text, 4096) == [text]


def test_split_does_not_break_grapheme_clusters() -> None:
    family = "👨\u200d👩\u200d👧"  # 5 code points, one visible emoji
    chunks = split_message(family * 10, 12)
    assert all(len(c) <= 12 for c in chunks)
    assert all(c == family * (len(c) // len(family)) for c in chunks), chunks
    flags = "🇫🇷🇩🇪🇯🇵"
    assert split_message(flags, 3) == ["🇫🇷", "🇩🇪", "🇯🇵"]
    accented = "e\u0301" * 10  # e + combining acute accent
    assert all(c == "e\u0301" * (len(c) // 2) for c in split_message(accented, 5))


def test_split_does_not_cut_inside_links_or_inline_code() -> None:
    text = "see [the full docs page](https://example.com/docs) and `some inline code` ok"
    for chunk in split_message(text, 52):
        assert chunk.count("[") == chunk.count("]")
        assert chunk.count("`") % 2 == 0


def test_split_custom_length_function_is_respected() -> None:
    # A length function that doubles everything: chunks must be half as long.
    chunks = split_message("abc def ghi jkl mno", 14, lambda s: 2 * len(s))
    assert chunks == ["abc def", "ghi jkl", "mno"]


_PROSE = st.text(alphabet="abcdeXYZ é😀.,-#>*_", min_size=1, max_size=40)
_PARAGRAPH = st.lists(_PROSE, min_size=1, max_size=4).map("\n".join)
_CODE_BLOCK = st.builds(
    lambda marker, lang, lines: f"{marker}{lang}\n" + "\n".join(lines) + f"\n{marker}",
    st.sampled_from(["```", "~~~", "````"]),
    st.sampled_from(["", "python", "js"]),
    st.lists(st.text(alphabet="abc (){}=<>&*_😀 ", max_size=50), max_size=8),
)
_DOCUMENT = st.lists(st.one_of(_PARAGRAPH, _CODE_BLOCK), min_size=1, max_size=8).map("\n\n".join)


@settings(deadline=None, max_examples=150)
@given(text=st.text(alphabet="ab c\n\t😀é.*_#-", max_size=400), limit=st.integers(2, 80))
def test_split_property_prose_nothing_lost(text: str, limit: int) -> None:
    chunks = split_message(text, limit, utf16_len)
    assert all(0 < utf16_len(c) <= limit for c in chunks)
    assert all(c.strip() for c in chunks)
    assert squash("".join(chunks)) == squash(text)


@settings(deadline=None, max_examples=150)
@given(text=_DOCUMENT, limit=st.integers(30, 200))
def test_split_property_fences_balanced_and_nothing_lost(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    for chunk in chunks:
        assert 0 < len(chunk) <= limit
        assert fences_balanced(chunk), chunk
    assert squash(drop_fence_lines("\n".join(chunks))) == squash(drop_fence_lines(text))


@settings(deadline=None, max_examples=100)
@given(text=st.text(alphabet="`~ab\n *_[]()", max_size=300), limit=st.integers(10, 60))
def test_split_property_arbitrary_markdown_terminates_within_limit(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert bool(chunks) == bool(text.strip())


# ---------------------------------------------------------------------------
# Telegram HTML
# ---------------------------------------------------------------------------


def tg(text: str) -> str:
    html = markdown_to_telegram_html(text)
    assert_telegram_html(html)
    return html


def test_telegram_escapes_html() -> None:
    assert tg("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert tg("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert tg("&lt; stays literal") == "&amp;lt; stays literal"


def test_telegram_emphasis() -> None:
    assert tg("**bold** and __also__") == "<b>bold</b> and <b>also</b>"
    assert tg("*it* and _it_") == "<i>it</i> and <i>it</i>"
    assert tg("~~gone~~") == "<s>gone</s>"
    assert tg("***both***") == "<b><i>both</i></b>"
    assert tg("**bold *nested* bold**") == "<b>bold <i>nested</i> bold</b>"
    assert tg("**a < b**") == "<b>a &lt; b</b>"


@pytest.mark.parametrize(
    "text",
    [
        "use snake_case_names here",
        "call my_func_name() or _private_thing",
        "2*3*4 = 24",
        "a * b * c",
        "x**2 + y**2",
        "**bold with no close",
        "*dangling",
        "~~not closed",
        "__init__py_file_",
    ],
)
def test_telegram_literal_markers_stay_text(text: str) -> None:
    html = tg(text)
    assert "<i>" not in html and "<s>" not in html
    if text != "__init__py_file_":
        assert html == text


def test_telegram_unbalanced_and_interleaved_markers_are_well_formed() -> None:
    for text in ["**a *b** c*", "*a **b* c**", "~~a **b~~ c**", "**x** **y", "_a *b_ c*", "***x**"]:
        tg(text)  # assert_telegram_html does the checking


def test_telegram_code_is_not_formatted() -> None:
    assert tg("`a **b** <c>`") == "<code>a **b** &lt;c&gt;</code>"
    assert tg("``x ` y``") == "<code>x ` y</code>"
    html = tg("```python\nif a < b and x**2:\n    print('*no*')\n```")
    assert html == (
        "<pre><code class=\"language-python\">if a &lt; b and x**2:\n    print('*no*')</code></pre>"
    )
    assert tg("```\nplain\n```") == "<pre>plain</pre>"


def test_telegram_unclosed_fence_runs_to_the_end() -> None:
    assert tg("text\n```sh\nls -la **x**") == 'text\n<pre><code class="language-sh">ls -la **x**</code></pre>'


def test_telegram_language_tag_is_sanitised() -> None:
    html = tg('```py"><b>\nx\n```')
    assert 'class="language-py"' in html or "<pre>" in html


def test_telegram_links() -> None:
    assert (
        tg("[docs](https://example.com/a?x=1&y=2)") == '<a href="https://example.com/a?x=1&amp;y=2">docs</a>'
    )
    assert tg('[q](https://e.com/"x")') == '<a href="https://e.com/&quot;x&quot;">q</a>'
    assert tg("[me](tg://user?id=1) [mail](mailto:a@b.c)").count("<a href=") == 2
    assert tg("[**bold** link](http://x.y)") == '<a href="http://x.y"><b>bold</b> link</a>'
    assert tg("[wiki](https://en.wikipedia.org/wiki/Foo_(bar))") == (
        '<a href="https://en.wikipedia.org/wiki/Foo_(bar)">wiki</a>'
    )


@pytest.mark.parametrize(
    "text",
    ["[click](javascript:alert(1))", "[x](data:text/html,hi)", "[f](ftp://host/file)", "[r](relative/path)"],
)
def test_telegram_bad_link_schemes_stay_text(text: str) -> None:
    html = tg(text)
    assert "<a" not in html
    assert html == text


def test_telegram_bare_url_underscores_are_not_italic() -> None:
    assert tg("see https://example.com/_private_/page") == "see https://example.com/_private_/page"


def test_telegram_blocks() -> None:
    assert tg("# Title") == "<b>Title</b>"
    assert tg("## **Step 1**: do it ##") == "<b>Step 1: do it</b>"  # no <b> inside <b>
    assert tg("- one\n* two\n  + three") == "• one\n• two\n  • three"
    assert tg("> quoted *text*\n> more\n\nafter") == (
        "<blockquote>quoted <i>text</i>\nmore</blockquote>\n\nafter"
    )
    assert tg("#hashtag") == "#hashtag"
    assert tg("---") == "──────────"


def test_telegram_backslash_escapes() -> None:
    assert tg(r"\*not italic\* and \_x\_") == "*not italic* and _x_"


_TOKENS = [
    "**",
    "*",
    "_",
    "__",
    "~~",
    "`",
    "```",
    "```py",
    "~~~",
    "\n",
    "\n\n",
    " ",
    "a",
    "b_c",
    "2*3",
    "<",
    ">",
    "&",
    '"',
    '[x](https://e.com/"q)',
    "[y](javascript:x)",
    "# ",
    "> ",
    "- ",
    "* ",
    "https://a.b/_c_",
    "😀",
    "\\*",
    "[",
    "](",
    ")",
    "&amp;",
    "<b>",
    "é\u0301",
]
_MARKDOWNISH = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)


@settings(deadline=None, max_examples=300)
@given(text=_MARKDOWNISH)
def test_telegram_property_always_well_formed(text: str) -> None:
    html = markdown_to_telegram_html(text)
    assert_telegram_html(html)
    # Other dialects must cope with the same input too.
    markdown_to_slack_mrkdwn(text)
    markdown_to_whatsapp(text)


# ---------------------------------------------------------------------------
# split_for_telegram
# ---------------------------------------------------------------------------


def _long_reply() -> str:
    prose = " ".join(f"Sentence {i} has **bold**, `code` & <tags>." for i in range(60))
    code = "\n".join(f"    result_{i} = items[{i}] * 2  # <keep> & {'x' * 10}" for i in range(110))
    reply = f"# Report\n\n{prose}\n\n```python\ndef run():\n{code}\n```\n\n{prose}\n\n- done 😀\n"
    assert len(reply) > 9000
    return reply


def test_split_for_telegram_long_reply_with_code() -> None:
    reply = _long_reply()
    chunks = split_for_telegram(reply)
    assert len(chunks) >= 3
    for html in chunks:
        assert telegram_html_length(html) <= 4096
        assert_telegram_html(html)
    code_htmls = [html for html in chunks if "result_" in html]
    assert len(code_htmls) >= 2  # the code block itself had to be split...
    assert all('<pre><code class="language-python">' in html for html in code_htmls)  # ...and reopened
    shown = "\n".join(telegram_text(html) for html in chunks)  # what the reader sees: nothing lost
    assert squash(shown) == squash(telegram_text(markdown_to_telegram_html(reply)))


def test_split_for_telegram_counts_utf16() -> None:
    chunks = split_for_telegram("😀" * 5000)
    assert [telegram_html_length(html) for html in chunks] == [4096, 4096, 1808]
    assert "".join(chunks) == "😀" * 5000


def test_split_for_telegram_measures_converted_html() -> None:
    # Escaping makes the HTML source longer than the limit, but Telegram counts "&lt;" as 1.
    text = "<" * 100
    assert split_for_telegram(text, limit=100) == ["&lt;" * 100]
    assert telegram_text("&lt;" * 100) == text  # the plain-text fallback shows the same


def test_telegram_text_is_what_telegram_shows() -> None:
    html = markdown_to_telegram_html("**bold** and <odd> & [a link](https://x.io) `x < 1`")
    assert telegram_text(html) == "bold and <odd> & a link x < 1"


def test_split_for_telegram_empty() -> None:
    assert split_for_telegram("  \n ") == []


@settings(deadline=None, max_examples=100)
@given(text=_MARKDOWNISH, limit=st.integers(40, 120))
def test_split_for_telegram_property(text: str, limit: int) -> None:
    for html in split_for_telegram(text, limit):
        assert telegram_html_length(html) <= limit
        assert_telegram_html(html)


# ---------------------------------------------------------------------------
# Slack, Discord, plain text
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold**", "*bold*"),
        ("*it* and _it_", "_it_ and _it_"),
        ("~~gone~~", "~gone~"),
        ("[docs](https://e.com/a?b=1&c=2)", "<https://e.com/a?b=1&c=2|docs>"),
        ("[**docs** & co](https://e.com)", "<https://e.com|docs &amp; co>"),
        ("[bad](javascript:alert(1))", "[bad](javascript:alert(1))"),
        ("# Heading **x**", "*Heading x*"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("`x < **y**`", "`x &lt; **y**`"),
        ("```python\nif a < b:\n    pass\n```", "```\nif a &lt; b:\n    pass\n```"),
        ("> quote **b**", "> quote *b*"),
        ("- item", "• item"),
        ("snake_case_name", "snake_case_name"),
    ],
)
def test_slack_conversion(markdown: str, expected: str) -> None:
    assert markdown_to_slack_mrkdwn(markdown) == expected


def test_split_for_slack_converts_and_fits() -> None:
    reply = _long_reply()
    chunks = split_for_slack(reply, limit=1500)
    assert len(chunks) > 5
    assert all(len(c) <= 1500 for c in chunks)
    assert all("**" not in c.replace("**2", "") for c in chunks if "```" not in c)
    assert all("language" not in c and "```python" not in c for c in chunks)
    assert all(fences_balanced(c) for c in chunks)


def test_split_for_discord_passes_markdown_through() -> None:
    reply = _long_reply()
    chunks = split_for_discord(reply)
    assert all(len(c) <= 2000 for c in chunks)
    assert chunks[0].startswith("# Report")
    assert any("```python" in c for c in chunks[1:])
    assert all(fences_balanced(c) for c in chunks)
    assert squash(drop_fence_lines("\n".join(chunks))) == squash(drop_fence_lines(reply))


def test_crlf_input_is_normalised() -> None:
    assert tg("**a**\r\n```\r\nx\r\n```") == "<b>a</b>\n<pre>x</pre>"
    assert split_message("a\r\n\r\nb", 2) == ["a", "b"]
