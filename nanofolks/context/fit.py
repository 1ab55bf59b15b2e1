"""Fit one bot's prompt into the model's window without ever dropping the user's newest message.

When the prompt is too long, what goes first is, in order: the oldest history, the summary of what came
before it, the memory block (its least important lines first), then the persona (full, compact, the name
line). When even the shortest
prompt cannot carry the message, `PromptTooLong` says so plainly. Fitting only measures parts;
`assemble` decides the order in which they are sent, so a different order changes nothing here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from nanofolks.llm.client import LLMError
from nanofolks.llm.tokens import count_messages, count_text

Chat = dict[str, Any]


class PromptTooLong(LLMError):
    """Even the newest message with the shortest instructions does not fit the model's window."""


@dataclass
class PromptParts:
    personas: list[str]  # the bot's instructions, longest first; the first that fits is sent
    memory: str = ""  # the memory block: a header, then lines in priority order
    history: list[Chat] = field(default_factory=list)  # older messages, oldest first
    summary: list[Chat] = field(default_factory=list)  # the summary of what came before the history
    newest: list[Chat] = field(default_factory=list)  # the user's message and this turn's notes: never cut
    fixed: str = ""  # instructions never cut (how to call tools)
    history_step: int = 1  # history is cut where its index is a multiple of this, if such a cut fits


Assemble = Callable[[PromptParts], list[Chat]]


def fit_prompt(parts: PromptParts, budget: int, model: str, assemble: Assemble, window: int) -> list[Chat]:
    """The messages to send, at most `budget` tokens; raises PromptTooLong when the message cannot fit."""
    messages = assemble(parts)
    if count_messages(messages, model) <= budget:
        return messages
    fitted = (_trim_history(parts, budget, model, assemble)
              or _trim_memory(replace(parts, history=[], summary=[]), budget, model, assemble)
              or _shorten_persona(replace(parts, history=[], summary=[], memory=""), budget, model, assemble))
    if fitted is None:
        raise _too_long(parts, budget, model, window)
    return assemble(fitted)


def _cost(parts: PromptParts, model: str, assemble: Assemble) -> int:
    return count_messages(assemble(parts), model)


def _trim_history(parts: PromptParts, budget: int, model: str, assemble: Assemble) -> PromptParts | None:
    """Keep the newest history that fits, whole tool exchanges only, and the summary while it fits with
    them all; None when even no history is too much.

    The cut is moved on to the next multiple of `history_step` (unless that leaves no history): while
    the conversation grows, the history then starts at the same message for several turns, so the
    prompt keeps the previous turn's as its prefix (context/room.py:window_start)."""
    used = _cost(replace(parts, history=[]), model, assemble)
    if used > budget:
        if parts.summary:
            return _trim_history(replace(parts, summary=[]), budget, model, assemble)
        return None
    groups = _exchanges(parts.history)
    starts = list(accumulate((len(g) for g in groups[:-1]), initial=0))  # each group's index in history
    first = len(groups)  # the oldest group kept
    for i in range(len(groups) - 1, -1, -1):
        cost = count_messages(groups[i], model) - count_messages([], model)
        if used + cost > budget:
            break
        used += cost
        first = i
    if first < len(groups):
        step = max(1, parts.history_step)
        aligned = -(-starts[first] // step) * step
        first = next((i for i in range(first, len(groups)) if starts[i] >= aligned), first)
    return replace(parts, history=[m for g in groups[first:] for m in g])


def _exchanges(history: list[Chat]) -> list[list[Chat]]:
    """Messages grouped so that an assistant's tool calls and the tool results answering them stay together."""
    groups: list[list[Chat]] = []
    for msg in history:
        if msg.get("role") == "tool" and groups and (groups[-1][0].get("tool_calls")):
            groups[-1].append(msg)
        else:
            groups.append([msg])
    return groups


def _trim_memory(parts: PromptParts, budget: int, model: str, assemble: Assemble) -> PromptParts | None:
    """Drop the memory block's last (least important) lines until the prompt fits."""
    lines = parts.memory.splitlines()
    while lines:
        items = [i for i, line in enumerate(lines) if line.startswith("- ")]
        # Without its last item (and the section title that item may leave alone); no items, no block.
        lines = lines[: items[-2] + 1] if len(items) > 1 else []
        candidate = replace(parts, memory="\n".join(lines))
        if _cost(candidate, model, assemble) <= budget:
            return candidate
    return None


def _shorten_persona(parts: PromptParts, budget: int, model: str, assemble: Assemble) -> PromptParts | None:
    for shorter in range(1, len(parts.personas)):
        candidate = replace(parts, personas=parts.personas[shorter:])
        if _cost(candidate, model, assemble) <= budget:
            return candidate
    return None


def _too_long(parts: PromptParts, budget: int, model: str, window: int) -> PromptTooLong:
    message = sum(count_text(str(m.get("content") or ""), model) for m in parts.newest)
    kept = window - budget  # for the reply, and the tool definitions sent with the prompt
    return PromptTooLong(
        f"your message is too long for {model}: it is {message:,} tokens, and the model's context window of "
        f"{window:,} tokens keeps {kept:,} for the reply and tool definitions and about {count_text(parts.personas[-1], model):,} "
        "for the bot's shortest instructions. Shorten the message, or use a model with a larger window."
    )
