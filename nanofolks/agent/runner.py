"""Run one bot for one turn: build its prompt from persona, room history and tools, then let the
agent loop think, act and observe until it answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nanofolks.agent.budget import TurnBudget
from nanofolks.agent.loop import AgentLoop, LoopResult
from nanofolks.agent.textcalls import StreamGuard, describe_tools
from nanofolks.agent.toolmode import tool_mode
from nanofolks.agent.tools import Tool, ToolContext, ToolRegistry, builtin_registry
from nanofolks.config.loader import workspace_path
from nanofolks.config.schema import Config
from nanofolks.context.fit import PromptParts, PromptTooLong, fit_prompt
from nanofolks.context.room import RoomContext, window_step
from nanofolks.crew.crew import LEADER, Bot, Crew
from nanofolks.crew.prompt import system_prompt
from nanofolks.llm.client import LLM, LLMError, is_local
from nanofolks.llm.tokens import context_window, count_text
from nanofolks.orchestrator.turn import BotReply, Turn
from nanofolks.rooms.rooms import Rooms
from nanofolks.rooms.tasks import Tasks
from nanofolks.routines.worklog import tool_entry
from nanofolks.store.memory import store_large_output
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import Room, RoomRepo
from nanofolks.store.tasks import TaskRepo
from nanofolks.store.worklog import insert as log_work
from nanofolks.text import truncate_middle

log = logging.getLogger("nanofolks.agent")

TokenSink = Callable[[str, str], None]  # (bot handle, text piece)

MAX_RESULT_CHARS = 16_000

_STOPS = {
    "limit": "I stopped after {steps} steps, the most one answer may take (agents.defaults.maxIterations), "
             "so this may be incomplete.",
    "repeat": "I stopped because I was about to repeat the same {tool} call.",
    "budget": "The turn budget for this message ran out before I finished, so this may be incomplete.",
    "malformed": "I tried to use a tool but could not write the call in a form I can run.",
}


class BotRunner:
    def __init__(self, config: Config, crew: Crew, llm: LLM, messages: MessageRepo,
                 tasks: Tasks | None = None, tools: ToolRegistry | None = None, memory: Any = None,
                 keeper: Any = None, skills: Any = None, context: RoomContext | None = None):
        self.config = config
        self.crew = crew
        self.llm = llm
        self.messages = messages
        self.context = context or RoomContext(config, crew, llm, messages.db)  # where the room's context starts
        self.tasks = tasks or Tasks(TaskRepo(messages.db), Rooms(RoomRepo(messages.db), crew))
        self.tools = tools or builtin_registry()
        self.memory = memory  # a MemoryService that primes prompts and lends `search_memory`, or None
        self.keeper = keeper  # the vault's Keeper: tools get {{name}} values at run time; outputs are screened
        self.skills = skills  # the workspace's Skills: listed in prompts, read and run through two tools
        if skills is not None:
            from nanofolks.skills.tools import skill_tools

            for tool in skill_tools(skills):
                self.tools.register(tool)
        if memory is not None:
            from nanofolks.memory.tool import search_memory_tool

            self.tools.register(search_memory_tool(memory))

    async def answer(
        self,
        handle: str,
        turn: Turn,
        budget: TurnBudget,
        consulted: list[BotReply] | None = None,
        on_token: TokenSink | None = None,
    ) -> BotReply:
        return await self._answer(handle, turn, budget, consulted or [], on_token)

    async def _answer(self, handle: str, turn: Turn, budget: TurnBudget, consulted: list[BotReply],
                      on_token: TokenSink | None, task: str | None = None, delegator: str = "") -> BotReply:
        """One bot's answer. With `task`, the bot is a specialist doing what `delegator` handed it,
        and it cannot delegate in turn."""
        if budget.remaining <= 0:
            return BotReply(handle, "", ok=False, error="the turn budget for this message is used up")
        bot = self.crew.bot(handle)
        # with routing on, a bot's own tier (a hire's role template gives one) wins over the message's
        model, tier = self.llm.route_model(handle, (self.config.routing.enabled and bot.tier) or turn.tier)
        if self.llm.spend is not None and self.config.spend.fallback_model and await self.llm.spend.reached(handle, model):
            model = self.config.spend.fallback_model  # past a spend limit: the prompt is built for the fallback
        mode = tool_mode(self.config, handle, model)
        tools = self.tools.for_bot(bot, self.config, can_delegate=task is None,  # a delegated task is not passed on
                                   has_reports=bool(self.crew.reports(handle))) + self._skill_tools(bot)
        try:
            prompt, tools = await self._prompt(handle, turn, consulted, model, tools, mode, task, delegator)
        except PromptTooLong as exc:
            return BotReply(handle, "", ok=False, error=str(exc))

        async def run_bot(specialist: str, sub_task: str) -> BotReply:
            return await self._answer(specialist, turn, budget, [], None, task=sub_task, delegator=handle)

        calls: dict[str, dict[str, Any]] = {}  # call id -> arguments, for the work log entry of its result

        async def record(kind: str, role: str, content: str, meta: dict[str, Any]) -> None:
            message = Message(turn.room.id, handle, role, content, kind=kind, platform=turn.platform,
                              turn_id=turn.turn_id, meta=meta)
            if kind == "tool_call":
                calls[meta["call_id"]] = json.loads(content)["arguments"]
                await self._store(message)
                return
            entry = tool_entry(turn.room.id, handle, meta["tool"], calls.pop(meta["call_id"], {}), content,
                               meta["ok"], turn.turn_id)
            # outputs over 10 KB are kept once, apart, and referenced
            message.content = await self.messages.db.run(store_large_output, self.messages.db, content)
            await self.messages.db.quick(self.messages.add_many, [message], lambda conn: log_work(conn, entry))

        ctx = ToolContext(config=self.config, workspace=workspace_path(self.config), crew=self.crew, turn=turn,
                          bot=handle, tasks=self.tasks, store=self._store,
                          run_bot=run_bot if task is None else None, keeper=self.keeper,
                          db=self.messages.db)
        guard = StreamGuard((lambda piece: on_token(handle, piece)) if on_token else None)
        window = context_window(model, self.config)
        loop = AgentLoop(self.llm, self.tools, self.config.agents.defaults.max_iterations,
                         result_chars=max(2_000, min(MAX_RESULT_CHARS, window)))
        try:
            result = await loop.run(prompt, model=model, tier=tier, mode=mode, tools=tools, ctx=ctx, budget=budget,
                                    record=record, guard=guard)
        except LLMError as exc:  # the log keeps the provider's words; the user gets a plain line
            log.warning("@%s could not answer: %s", handle, exc)
            return BotReply(handle, "", ok=False, error=exc.plain)
        if result.stop == "budget" and result.steps == 0:
            return BotReply(handle, "", ok=False, error="the turn budget for this message is used up")
        text = self._compose(result, guard)
        if not text:
            return BotReply(handle, "", ok=False, error=f"model {model} returned an empty answer")
        return BotReply(handle, text)

    async def _prompt(self, handle: str, turn: Turn, consulted: list[BotReply], model: str, tools: list[Tool],
                      mode: str, task: str | None, delegator: str) -> tuple[list[dict[str, Any]], list[Tool]]:
        """The prompt and the tools offered with it: none when their definitions leave no room for the message."""
        try:
            return await self.build_messages(handle, turn, consulted, model, tools, mode, task, delegator), tools
        except PromptTooLong:
            if not tools:
                raise
        return await self.build_messages(handle, turn, consulted, model, [], mode, task, delegator), []

    @staticmethod
    def _compose(result: LoopResult, guard: StreamGuard) -> str:
        """The reply: the answer; or, when the loop stopped early, what the bot had, what its
        specialists answered, and plainly why it stopped."""
        if result.stop == "answer":
            return result.text
        note = _STOPS[result.stop].format(steps=result.steps, tool=f"`{result.repeated}`")
        extra = [*result.contributions, f"_({note})_"]
        guard.start()
        guard.say("\n\n".join(extra))
        return "\n\n".join(p for p in [result.text, *extra] if p).strip()

    async def build_messages(
        self,
        handle: str,
        turn: Turn,
        consulted: list[BotReply],
        model: str,
        tools: list[Tool] | None = None,
        mode: str = "native",
        task: str | None = None,
        delegator: str = "",
    ) -> list[dict[str, Any]]:
        bot = self.crew.bot(handle)
        room = turn.room
        personas, fixed = self._instructions(bot, room, model, tools, mode)
        memory = ""
        if self.memory is not None:  # what the crew remembers that bears on this message, within its token budget
            memory = await self.memory.prime(turn, model)
        limit = self.config.orchestrator.history_messages
        # This turn's own message is left out of the history: it is the newest part, sent whatever else must go.
        summary, older = await self.messages.db.quick(self.context.history, room.id, limit, turn.turn_id)
        cut = self.config.orchestrator.max_message_chars
        history = [self._as_chat(m, handle, cut) for m in older]
        newest = [{"role": "user", "content": truncate_middle(turn.text, cut)}]
        if consulted:
            heard = "\n\n".join(f"@{r.bot} ({self.crew.bot(r.bot).name}) answered:\n{r.text}" for r in consulted)
            newest.append({
                "role": "user",
                "content": f"[Crew notes, not from the user] Your specialists answered first:\n\n{heard}\n\n"
                           "Give the user one clear final answer that uses their contributions and credits them.",
            })
        if turn.desk_note and handle == LEADER and task is None:
            newest.append({"role": "user", "content": turn.desk_note})
        if task is not None:
            boss = self.crew.bot(delegator)
            newest.append({
                "role": "user",
                "content": f"[Task from @{delegator} ({boss.name}), not from the user] {task}\n\n"
                           f"Do this task, then reply with your result for @{delegator}.",
            })
        window = context_window(model, self.config)
        reserved = self.config.agents.defaults.max_tokens
        if tools and mode == "native":  # the tool schemas travel with every call
            reserved += count_text(json.dumps([t.schema() for t in tools]), model)
        parts = PromptParts(personas=personas, memory=memory, history=history, newest=newest, fixed=fixed,
                            summary=[self.context.summary_chat(summary)] if summary else [],
                            history_step=window_step(limit))
        return fit_prompt(parts, window - reserved, model, assemble, window)

    def _instructions(self, bot: Bot, room: Room, model: str, tools: list[Tool] | None,
                      mode: str) -> tuple[list[str], str]:
        """The bot's personas (longest first; fitting sends the first that fits) and the instructions never
        cut (how to call its tools, its skills)."""
        personas = [system_prompt(bot, self.crew, room.name, room.type, room.members, compact=compact)
                    for compact in ((True,) if is_local(model) else (False, True))]
        personas.append(personas[-1].split("\n", 1)[0])  # the name line: the shortest that still says who it is
        fixed = ""
        if tools:
            fixed = describe_tools(tools) if mode == "text" else _native_note(tools)
        if self.skills is not None and any(t.name == "read_skill" for t in tools or []):
            from nanofolks.skills.tools import skills_block

            fixed += "\n\n" + skills_block(self.skills.for_bot(bot.skills))
        return personas, fixed

    def stable_prefix(self, handle: str, room: Room) -> tuple[str, list[dict[str, Any]]]:
        """The model `handle` answers with in `room` (no routing tier) and the message that starts every
        prompt it is sent there while nothing has to be cut: what a KV cache can hold before its first turn."""
        bot = self.crew.bots[handle]
        model = self.llm.model_for(handle)
        tools = self.tools.for_bot(bot, self.config, can_delegate=True) + self._skill_tools(bot)
        personas, fixed = self._instructions(bot, room, model, tools, tool_mode(self.config, handle, model))
        return model, assemble(PromptParts(personas=personas, fixed=fixed))[:1]

    def _skill_tools(self, bot: Bot) -> list[Tool]:
        """read_skill and run_skill_script, for a bot whose role card lists a skill that is loaded."""
        if self.skills is None or not self.skills.for_bot(bot.skills):
            return []
        tools = [self.tools.get("read_skill"), self.tools.get("run_skill_script")]
        return [t for t in tools if t is not None and t.enabled(self.config)]

    async def _store(self, message: Message) -> None:
        await self.messages.db.quick(self.messages.add, message)

    @staticmethod
    def _as_chat(msg: Message, handle: str, cut: int) -> dict[str, Any]:
        content = truncate_middle(msg.content, cut)  # the room keeps it whole; the model reads head and tail
        if msg.role == "user":
            return {"role": "user", "content": content}
        if msg.author == handle:
            return {"role": "assistant", "content": content}
        return {"role": "user", "content": f"[@{msg.author}] {content}"}


def assemble(parts: PromptParts) -> list[dict[str, Any]]:
    """The order a prompt is sent in. What changes least comes first, so that a cached prefix (the local
    model's KV state per bot, a provider's prompt cache) covers all but this turn: persona and tools, the
    summary and the older history, then this turn's memory block and the newest message."""
    system = "\n\n".join(p for p in (parts.personas[0], parts.fixed) if p)
    memory = [{"role": "system", "content": parts.memory}] if parts.memory else []
    return [{"role": "system", "content": system}, *parts.summary, *parts.history, *memory, *parts.newest]


def _native_note(tools: list[Tool]) -> str:
    return ("## Tools\nYou can call these tools: " + ", ".join(t.name for t in tools) + ". File paths are "
            "relative to the crew's workspace. Use a tool when the task needs one; answer directly otherwise.")
