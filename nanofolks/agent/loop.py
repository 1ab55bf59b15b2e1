"""The think -> act -> observe loop: call the model with the bot's tools, run the calls it makes,
feed the results back, and repeat until it answers.

It stops on a final answer; at `agents.defaults.maxIterations` model calls; when the model makes
the same call (same tool, same arguments) as in its previous step; or when the turn budget shared
by every bot answering this human message runs out. Every model call takes one unit of that budget."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nanofolks.agent.budget import TurnBudget
from nanofolks.agent.presence import PRESENCE
from nanofolks.agent.textcalls import StreamGuard, correction, parse, result_message, strip_calls
from nanofolks.agent.tools.registry import Tool, ToolContext, ToolRegistry, dump_arguments
from nanofolks.llm.client import LLM, ToolCall
from nanofolks.text import truncate_middle

MAX_CORRECTIONS = 2  # malformed text calls answered with a correction before the text counts as the answer

# (kind, role, content, meta) -> stored in the room's history
Recorder = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]


@dataclass
class LoopResult:
    text: str  # the answer, or the last thing the model said before it stopped; never tool-call JSON
    stop: str  # answer | limit | repeat | budget | malformed
    steps: int  # model calls made
    repeated: str = ""  # the tool of the repeated call
    contributions: list[str] = field(default_factory=list)  # what delegated specialists answered


class AgentLoop:
    def __init__(self, llm: LLM, registry: ToolRegistry, max_iterations: int, result_chars: int):
        self.llm = llm
        self.registry = registry
        self.max_iterations = max_iterations
        self.result_chars = result_chars  # a tool result longer than this is cut in the middle

    async def run(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str,
        tier: str = "",  # the routing tier the model serves, recorded with each call's usage
        mode: str,  # native | text
        tools: list[Tool],
        ctx: ToolContext,
        budget: TurnBudget,
        record: Recorder,
        guard: StreamGuard,
    ) -> LoopResult:
        convo = list(messages)
        schemas = [t.schema() for t in tools] if mode == "native" and tools else None
        previous: set[tuple[str, str]] = set()
        corrections, last_text, contributions = 0, "", []
        for step in range(1, self.max_iterations + 1):
            if not budget.take():
                return LoopResult(last_text, "budget", step - 1, contributions=contributions)
            guard.start()
            with PRESENCE.doing(ctx.bot, "thinking"):
                result = await self.llm.chat(convo, model=model, tier=tier, bot=ctx.bot, room_id=ctx.turn.room.id,
                                             tools=schemas, on_token=guard.feed if guard.sink else None)
            calls = result.tool_calls if mode == "native" else []
            if mode == "text" and tools:
                parsed = parse(result.text)
                if parsed.error and corrections < MAX_CORRECTIONS:
                    corrections += 1
                    guard.finish(answer=False)
                    convo += [{"role": "assistant", "content": result.text},
                              {"role": "user", "content": correction(parsed.error)}]
                    continue
                if parsed.call is not None:
                    calls = [ToolCall(f"text_{step}", parsed.call.name, parsed.call.arguments)]
            text = strip_calls(result.text)
            if not calls:
                guard.finish(answer=True)
                stop = "malformed" if not text and mode == "text" and corrections else "answer"
                return LoopResult(text, stop, step, contributions=contributions)
            guard.finish(answer=False)
            last_text = text or last_text
            keys = [(c.name, dump_arguments(c.arguments)) for c in calls]
            repeated = next((name for name, args in keys if (name, args) in previous), "")
            if repeated:
                return LoopResult(last_text, "repeat", step, repeated=repeated, contributions=contributions)
            previous = set(keys)
            convo.append(_assistant_turn(result.text, calls, mode))
            for call in calls:
                content, ok = await self._act(call, tools, ctx, record, mode, step)
                if call.name == "delegate" and ok:
                    contributions.append(content)
                convo.append({"role": "tool", "tool_call_id": call.id, "content": content} if mode == "native"
                             else {"role": "user", "content": result_message(call.name, content)})
        return LoopResult(last_text, "limit", self.max_iterations, contributions=contributions)

    async def _act(self, call: ToolCall, tools: list[Tool], ctx: ToolContext, record: Recorder, mode: str,
                   step: int) -> tuple[str, bool]:
        await record("tool_call", "assistant", json.dumps({"tool": call.name, "arguments": call.arguments},
                                                          ensure_ascii=False),
                     {"call_id": call.id, "mode": mode, "step": step})
        with PRESENCE.doing(ctx.bot, "working"):
            outcome = await self.registry.execute(call.name, call.arguments, tools, ctx)
        # The room keeps the whole output (large ones as a blob); the model sees a bounded cut of it.
        await record("tool_result", "tool", outcome.text, {"call_id": call.id, "tool": call.name, "ok": outcome.ok})
        return truncate_middle(outcome.text, self.result_chars), outcome.ok


def _assistant_turn(text: str, calls: list[ToolCall], mode: str) -> dict[str, Any]:
    if mode == "text":
        return {"role": "assistant", "content": text}
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for c in calls
        ],
    }
