"""Tool calls written as text, for models without native tool calling (the local model, many Ollama
models): how the tools are described to them, how their calls are parsed, and how the calls are kept
out of what the user sees.

A text call is a fenced JSON block (a bare object is accepted too):

    ```json
    {"tool": "read_file", "arguments": {"path": "notes.md"}}
    ```

The parser is tolerant: the first block that looks like a call wins, and trailing commas, single
quotes, Python's True/False/None and raw newlines inside strings are all accepted."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nanofolks.agent.tools.registry import Tool

RESULT_PREFIX = "Tool result"  # how results are fed back (as a user message); tests' fake server keys on it
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
# An object is a call attempt when it has a "tool" or "arguments" key (quoted or not).
_ATTEMPT = re.compile(r"""[{,]\s*["']?(?:tool|arguments)["']?\s*:""")


@dataclass
class TextCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    call: TextCall | None = None
    error: str = ""  # the text tried to call a tool but the call could not be read

    @property
    def attempted(self) -> bool:
        return self.call is not None or bool(self.error)


def describe_tools(tools: list[Tool]) -> str:
    """The system-prompt section that teaches a model without native tool calls to use its tools."""
    lines = [
        "## Tools",
        "You can use these tools. To use one, reply with only this block and nothing else:",
        "```json",
        '{"tool": "TOOL_NAME", "arguments": {"ARGUMENT": "VALUE"}}',
        "```",
        f'The result comes back in the next message, starting with "{RESULT_PREFIX}". One tool at a time. '
        "When you have what you need, answer normally, without any JSON block.",
        "",
    ]
    for tool in tools:
        props = tool.parameters.get("properties", {})
        required = set(tool.parameters.get("required", []))
        args = ", ".join(_describe_arg(name, spec, name in required) for name, spec in props.items())
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


def _describe_arg(name: str, spec: dict[str, Any], required: bool) -> str:
    kind = "|".join(f'"{v}"' for v in spec["enum"]) if "enum" in spec else spec.get("type", "any")
    return f"{name}: {kind}{'' if required else ' (optional)'}"


def result_message(name: str, text: str) -> str:
    return f"{RESULT_PREFIX} ({name}):\n{text}"


def correction(error: str) -> str:
    return (f"That tool call could not be read ({error}). Reply with exactly one block like "
            '```json\n{"tool": "TOOL_NAME", "arguments": {}}\n``` '
            "with valid JSON, or answer without any JSON block.")


def parse(text: str) -> Parsed:
    """The first tool call in a model's text, an error if it tried and failed, or nothing."""
    candidate = _first_candidate(text)
    if candidate is None:
        return Parsed()
    try:
        data = loads_tolerant(candidate)
    except ValueError as exc:
        return Parsed(error=str(exc))
    return _as_call(data)


def _as_call(data: Any) -> Parsed:
    if not isinstance(data, dict):
        return Parsed(error="the block is not a JSON object")
    name = data.get("tool") or data.get("name")
    if not isinstance(name, str) or not name.strip():
        return Parsed(error='the object has no "tool" name')
    arguments = data.get("arguments", data.get("args", data.get("parameters", {})))
    if isinstance(arguments, str):
        try:
            arguments = loads_tolerant(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return Parsed(error=f'"arguments" is not a JSON object: {exc}')
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return Parsed(error='"arguments" must be a JSON object')
    return Parsed(TextCall(name.strip(), arguments))


def strip_calls(text: str) -> str:
    """The text without any tool-call block: what a user may see."""
    for start, end in reversed(_attempt_spans(text)):
        text = text[:start] + text[end:]
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _first_candidate(text: str) -> str | None:
    spans = _attempt_spans(text, first_only=True)
    if not spans:
        return None
    start, end = spans[0]
    block = text[start:end]
    fenced = _FENCE.fullmatch(block)
    return (fenced.group(1) if fenced else block).strip()


def _attempt_spans(text: str, first_only: bool = False) -> list[tuple[int, int]]:
    """Where tool-call attempts are: fenced blocks holding one, else bare objects (or their unclosed rest)."""
    spans: list[tuple[int, int]] = []
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)]
    for start, end in fences:
        if _ATTEMPT.search(text[start:end]):
            spans.append((start, end))
    i = 0
    while i < len(text):
        start = text.find("{", i)
        if start < 0:
            break
        if any(a <= start < b for a, b in fences):
            i = next(b for a, b in fences if a <= start < b)
            continue
        end = _object_end(text, start)
        stop = end if end is not None else len(text)
        if _ATTEMPT.search(text[start:stop]):
            # An unclosed block that was opened with a fence: take the fence with it.
            fence_open = text.rfind("```", 0, start)
            if end is None and fence_open >= 0 and not text[fence_open:start].strip("`json \n\t"):
                start = fence_open
            spans.append((start, stop))
            i = stop
        else:
            i = start + 1
    spans.sort()
    return spans[:1] if first_only else spans


def _object_end(text: str, start: int) -> int | None:
    """The index after the `}` closing the object opened at `start`, or None when it never closes."""
    depth, quote, i = 0, "", start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def loads_tolerant(text: str) -> Any:
    """json.loads that also accepts what models commonly get wrong. ValueError says where it failed."""
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(_repair(text), strict=False)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


_LITERALS = {"True": "true", "False": "false", "None": "null"}


def _repair(text: str) -> str:
    """Single-quoted strings -> JSON strings, trailing commas dropped, Python literals -> JSON ones."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            body = text[i + 1 : j]
            if c == "'":
                body = re.sub(r'(?<!\\)"', '\\"', body.replace("\\'", "'"))
            out.append(f'"{body}"')
            i = j + 1
        elif c == ",":
            k = i + 1
            while k < n and text[k].isspace():
                k += 1
            if k >= n or text[k] not in "}]":
                out.append(c)
            i += 1
        elif c.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            out.append(_LITERALS.get(word, word))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


class StreamGuard:
    """Streams a bot's text as it is written, but holds back anything that may be a tool call (a
    code fence or a `{`) until the model call ends and the runner knows whether it was one."""

    def __init__(self, sink: Callable[[str], None] | None):
        self.sink = sink
        self._buf = ""
        self._sent = 0
        self._holding = False
        self._spoke = False  # something was shown during an earlier model call
        self._step_shown = False  # something was shown during this one

    def start(self) -> None:
        self._buf, self._sent, self._holding, self._step_shown = "", 0, False, False

    def feed(self, piece: str) -> None:
        self._buf += piece
        if self._holding or self.sink is None:
            return
        pending = self._buf[self._sent :]
        cut = _safe_length(pending)
        self._holding = pending[cut:].startswith(("{", "```"))
        self._emit(pending[:cut])
        self._sent += cut

    def finish(self, answer: bool) -> None:
        """End of one model call: show what was held back if the text was an answer, not a call."""
        if answer:
            rest = self._buf[self._sent :]
            self._emit(strip_calls(rest) if self._holding else rest)

    def say(self, text: str) -> None:
        """Show text that did not come from the model (e.g. why the bot stopped)."""
        self._emit(text)

    def _emit(self, text: str) -> None:
        if not text or self.sink is None:
            return
        if self._spoke and not self._step_shown:
            text = "\n\n" + text.lstrip()
        self._spoke = self._step_shown = True
        self.sink(text)


def _safe_length(pending: str) -> int:
    """How much of `pending` can be shown now: up to a `{` or a fence, and not trailing backticks
    that could still become a fence."""
    found = [p for p in (pending.find("{"), pending.find("```")) if p >= 0]
    return min(found) if found else len(pending.rstrip("`"))
