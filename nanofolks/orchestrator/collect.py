"""Step 4, collect: run the chosen bots concurrently, each with its persona, the room's history and
the question. When the leader consults specialists, they answer first and the leader hears them."""

from __future__ import annotations

import asyncio

from nanofolks.agent.budget import TurnBudget
from nanofolks.agent.runner import BotRunner, TokenSink
from nanofolks.orchestrator.turn import BotReply, Plan, Turn


async def collect(
    turn: Turn, plan: Plan, runner: BotRunner, budget: TurnBudget, on_token: TokenSink | None = None
) -> tuple[list[BotReply], list[BotReply]]:
    """Returns (replies shown to the user, specialists' contributions the leader used)."""
    consulted: list[BotReply] = []
    if plan.consult:
        consulted = list(await asyncio.gather(*(runner.answer(h, turn, budget) for h in plan.consult)))
    notes = [r for r in consulted if r.ok]
    stream = on_token if len(plan.bots) == 1 else None  # interleaved streams would be unreadable
    replies = await asyncio.gather(
        *(runner.answer(h, turn, budget, consulted=notes, on_token=stream) for h in plan.bots)
    )
    return list(replies), consulted
