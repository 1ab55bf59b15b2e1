"""The text tool-call parser: tolerant reading, clear errors, and calls kept out of what users see."""

from __future__ import annotations

import pytest

from nanofolks.agent.textcalls import (
    RESULT_PREFIX,
    StreamGuard,
    correction,
    describe_tools,
    loads_tolerant,
    parse,
    result_message,
    strip_calls,
)
from nanofolks.agent.tools import builtin_registry

FENCED = 'Let me look.\n```json\n{"tool": "read_file", "arguments": {"path": "notes.md"}}\n```'


@pytest.mark.parametrize(
    ("text", "name", "arguments"),
    [
        (FENCED, "read_file", {"path": "notes.md"}),
        ('```\n{"tool": "list_dir", "arguments": {}}\n```', "list_dir", {}),  # fence without a language
        ('{"tool": "list_dir", "arguments": {"path": "src"}}', "list_dir", {"path": "src"}),  # bare object
        ('Sure! {"tool": "list_dir"} I will wait.', "list_dir", {}),  # no arguments at all
        ('```json\n{"tool": "write_file", "arguments": {"path": "a.txt", "content": "x",},}\n```',
         "write_file", {"path": "a.txt", "content": "x"}),  # trailing commas
        ("{'tool': 'write_file', 'arguments': {'path': 'a.txt', 'content': 'say \"hi\"'}}",
         "write_file", {"path": "a.txt", "content": 'say "hi"'}),  # single quotes, inner double quotes
        ("{'tool': 'exec', 'arguments': {'command': 'ls', 'verbose': True, 'x': None}}",
         "exec", {"command": "ls", "verbose": True, "x": None}),  # Python literals
        ('{"tool": "write_file", "arguments": {"path": "a.md", "content": "line 1\nline 2"}}',
         "write_file", {"path": "a.md", "content": "line 1\nline 2"}),  # raw newline inside a string
        ('{"name": "read_file", "arguments": "{\\"path\\": \\"b.md\\"}"}', "read_file", {"path": "b.md"}),
        ('{"tool": "read_file", "args": {"path": "c.md"}}', "read_file", {"path": "c.md"}),
    ],
)
def test_parses_tolerantly(text: str, name: str, arguments: dict) -> None:
    parsed = parse(text)
    assert parsed.error == ""
    assert parsed.call is not None
    assert (parsed.call.name, parsed.call.arguments) == (name, arguments)


def test_first_call_wins_and_plain_code_is_not_a_call() -> None:
    text = ('Here is code:\n```python\nd = {"a": 1}\n```\nthen\n```json\n{"tool": "list_dir", "arguments": {}}\n```\n'
            '```json\n{"tool": "read_file", "arguments": {"path": "x"}}\n```')
    parsed = parse(text)
    assert parsed.call is not None and parsed.call.name == "list_dir"


@pytest.mark.parametrize("text", [
    "Just an answer, no tools needed.",
    'A JSON example for you: ```json\n{"name": "Ada", "age": 36}\n```',
    "Use {curly} braces in f-strings like f'{x}'.",
])
def test_answers_are_not_calls(text: str) -> None:
    parsed = parse(text)
    assert not parsed.attempted
    assert strip_calls(text) == text.strip()


@pytest.mark.parametrize(("text", "fragment"), [
    ('```json\n{"tool": "read_file", "arguments": {"path": "a"\n```', "Expecting"),  # unclosed object
    ('{"tool": "read_file", "arguments": {"path": "a"', "Expecting"),  # cut off mid-call
    ('```json\n{"tool": read_file, "arguments": {}}\n```', "Expecting value"),  # unquoted name
    ('{"arguments": {"path": "a"}}', 'no "tool" name'),
    ('{"tool": "read_file", "arguments": ["a"]}', "must be a JSON object"),
])
def test_malformed_calls_give_a_clear_error(text: str, fragment: str) -> None:
    parsed = parse(text)
    assert parsed.call is None
    assert fragment in parsed.error


def test_strip_calls_removes_call_blocks_only() -> None:
    text = FENCED + "\n\nAnd the `x` variable ```py\nprint(1)\n``` stays."
    shown = strip_calls(text)
    assert '"tool"' not in shown and "read_file" not in shown
    assert shown.startswith("Let me look.")
    assert "```py\nprint(1)\n```" in shown
    assert strip_calls('Wait: {"tool": "x", "arguments": {"p": 1') == "Wait:"  # unclosed bare call
    assert strip_calls('Here ```json\n{"tool": "x", "arguments": {"p": 1') == "Here"  # unclosed fenced call


def test_loads_tolerant_reports_where_it_failed() -> None:
    with pytest.raises(ValueError, match="line 1 column"):
        loads_tolerant('{"a": }')


def test_prompt_texts() -> None:
    registry = builtin_registry()
    tools = [registry.get("read_file"), registry.get("room_task")]
    described = describe_tools(tools)
    assert '{"tool": "TOOL_NAME", "arguments"' in described
    assert "- read_file(path: string): Read a text file" in described
    assert '"create"|"list"|"status"|"handoff"' in described and "(optional)" in described
    assert result_message("read_file", "hello").startswith(RESULT_PREFIX)
    assert "Expecting" in correction("Expecting value")


def _streamed(pieces: list[str], answer: bool) -> str:
    out: list[str] = []
    guard = StreamGuard(out.append)
    guard.start()
    for piece in pieces:
        guard.feed(piece)
    guard.finish(answer)
    return "".join(out)


def test_stream_guard_never_shows_a_call() -> None:
    pieces = ["Let me ", "look.\n`", "``json\n{\"to", 'ol": "read_file"}\n``', "`"]
    assert _streamed(pieces, answer=False) == "Let me look.\n"


def test_stream_guard_shows_code_in_an_answer() -> None:
    pieces = ["Use `x` and ", "```py\nprint({1: 2})\n", "```\nDone."]
    assert _streamed(pieces, answer=True) == "Use `x` and ```py\nprint({1: 2})\n```\nDone."


def test_stream_guard_separates_steps_and_drops_a_call_in_an_answer() -> None:
    out: list[str] = []
    guard = StreamGuard(out.append)
    guard.start()
    guard.feed("Checking.")
    guard.finish(answer=False)
    guard.start()
    guard.feed('All done. {"tool": "x", "arguments": {}}')
    guard.finish(answer=True)
    assert "".join(out).rstrip() == "Checking.\n\nAll done."
