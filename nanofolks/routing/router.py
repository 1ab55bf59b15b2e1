"""Which tier answers a message: layer 1 (the rules), layer 2 when they are unsure (a one-word answer from the
cheapest tier's model), and the room's sticky tier (a conversation keeps its tier: it moves up at once, and
down only when layer 1 is confident)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

from nanofolks.config.schema import TIERS, Config, is_local
from nanofolks.llm.client import LLM, LLMError
from nanofolks.llm.env import import_litellm
from nanofolks.routing import rules
from nanofolks.routing.rules import Decision
from nanofolks.routing.tiers import cheapest_model
from nanofolks.store.routing import RoutingRepo

LAYER2_CONFIDENCE = 0.5  # the model gives a word, not a score
_TIER_WORD = re.compile(r"\b(" + "|".join(TIERS) + r")\b")
_PROMPT = (
    "Sort the user's message into the cheapest tier of AI model that can answer it well. Tiers:\n"
    "simple: greetings, thanks, quick facts, one-line answers\n"
    "medium: everyday writing, explanations, summaries, translations, advice\n"
    "complex: analysis, plans, strategy, comparisons, long multi-part work\n"
    "reasoning: maths, proofs, logic puzzles, probability, step-by-step deduction\n"
    "coding: writing, reading or debugging code, errors, commands, queries\n"
    "Answer with one word: simple, medium, complex, reasoning or coding."
)


def classifier_prompt(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": _PROMPT}, {"role": "user", "content": text[:2000]}]


def stick(current: str | None, decision: Decision) -> Decision:
    """The room's tier after this message: up at once, down only when layer 1 is confident."""
    if current is None or current == decision.tier or TIERS.index(decision.tier) > TIERS.index(current):
        return decision
    if decision.layer == 1 and decision.confident:
        return decision
    return replace(decision, tier=current, sticky=True)


class Router:
    def __init__(self, config: Config, llm: LLM, rooms: RoutingRepo):
        self.config = config
        self.llm = llm
        self.rooms = rooms

    async def route(self, room_id: int, text: str) -> Decision:
        """The tier for this message in this room, remembered as the room's tier."""
        db = self.rooms.db
        current = await db.quick(self.rooms.room_tier, room_id)
        # Layer 2 can only raise a sticky tier: at the top there is nothing to ask.
        decision = await self.classify(text, room_id=room_id, ask_model=current != TIERS[-1])
        decision = stick(current, decision)
        if decision.tier != current:
            await db.quick(self.rooms.set_room_tier, room_id, decision.tier)
        return decision

    async def classify(self, text: str, *, room_id: int | None = None, ask_model: bool = True) -> Decision:
        """Layer 1, then layer 2 when layer 1 is unsure and the classifier is enabled."""
        decision = rules.classify(text)
        if decision.confident or not ask_model or not self.config.routing.llm_classifier.enabled:
            return decision
        return await self.ask_model(text, decision, room_id)

    async def ask_model(self, text: str, guess: Decision, room_id: int | None = None) -> Decision:
        """Layer 2: the cheapest tier's model names a tier; on a timeout, an error or no tier word, the guess."""
        timeout = self.config.routing.llm_classifier.timeout
        model = cheapest_model(self.config)
        if not is_local(model):
            import_litellm()  # once per process, and not on the classifier's clock
        try:
            result = await asyncio.wait_for(
                self.llm.chat(classifier_prompt(text), model=model, bot="router",
                              room_id=room_id, max_tokens=4, tier=TIERS[0]),
                timeout,
            )
        except (LLMError, TimeoutError):
            return guess
        found = _TIER_WORD.search(result.text.lower())
        return Decision(found.group(1), LAYER2_CONFIDENCE, layer=2) if found else guess
