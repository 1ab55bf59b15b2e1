"""Run one bot for one turn: build its prompt from persona and room history, call its model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nanofolks.config.schema import Config
from nanofolks.crew.crew import Crew
from nanofolks.crew.prompt import system_prompt
from nanofolks.llm.client import LLM, LLMError
from nanofolks.llm.tokens import context_window, fit_history
from nanofolks.orchestrator.turn import BotReply, Turn
from nanofolks.store.messages import Message, MessageRepo

TokenSink = Callable[[str, str], None]  # (bot handle, text piece)


@dataclass
class TurnBudget:
    """Model calls allowed for one human message, shared by every bot in the turn (no endless loops)."""

    remaining: int

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class BotRunner:
    def __init__(self, config: Config, crew: Crew, llm: LLM, messages: MessageRepo):
        self.config = config
        self.crew = crew
        self.llm = llm
        self.messages = messages

    async def answer(
        self,
        handle: str,
        turn: Turn,
        budget: TurnBudget,
        consulted: list[BotReply] | None = None,
        on_token: TokenSink | None = None,
    ) -> BotReply:
        if not budget.take():
            return BotReply(handle, "", ok=False, error="the turn budget for this message is used up")
        model = self.llm.model_for(handle)
        prompt = await self.build_messages(handle, turn, consulted or [], model)
        sink = (lambda piece: on_token(handle, piece)) if on_token else None
        try:
            result = await self.llm.chat(prompt, model=model, bot=handle, room_id=turn.room.id, on_token=sink)
        except LLMError as exc:
            return BotReply(handle, "", ok=False, error=str(exc))
        text = result.text.strip()
        if not text:
            return BotReply(handle, "", ok=False, error=f"model {model} returned an empty answer")
        return BotReply(handle, text)

    async def build_messages(
        self, handle: str, turn: Turn, consulted: list[BotReply], model: str
    ) -> list[dict[str, Any]]:
        bot = self.crew.bots[handle]
        room = turn.room
        system = [{"role": "system", "content": system_prompt(bot, self.crew, room.name, room.type, room.members)}]
        limit = self.config.orchestrator.history_messages
        # The history ends with this turn's user message (stored before any model is called).
        history = [self._as_chat(m, handle) for m in await self.messages.db.run(self.messages.recent, room.id, limit)]
        tail = []
        if consulted:
            heard = "\n\n".join(f"@{r.bot} ({self.crew.bots[r.bot].name}) answered:\n{r.text}" for r in consulted)
            tail.append({
                "role": "user",
                "content": f"[Crew notes, not from the user] Your specialists answered first:\n\n{heard}\n\n"
                           "Give the user one clear final answer that uses their contributions and credits them.",
            })
        window = context_window(model, self.config.agents.defaults.context_window)
        return fit_history(system, history, tail, window - self.config.agents.defaults.max_tokens, model)

    @staticmethod
    def _as_chat(msg: Message, handle: str) -> dict[str, Any]:
        if msg.role == "user":
            return {"role": "user", "content": msg.content}
        if msg.author == handle:
            return {"role": "assistant", "content": msg.content}
        return {"role": "user", "content": f"[@{msg.author}] {msg.content}"}
