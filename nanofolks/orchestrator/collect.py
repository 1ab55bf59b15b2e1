"""Step 4, collect: run the chosen bots concurrently, each with its persona, the room's history and
the question. When the leader consults specialists, they answer first and the leader hears them.

Every bot answers by the turn's deadline or not at all: its model call (retries included) is cancelled
there, and the bots that did answer in time are still heard."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from nanofolks.agent.budget import TurnBudget
from nanofolks.agent.runner import BotRunner, TokenSink
from nanofolks.orchestrator.turn import BotReply, Plan, Turn


async def collect(
    turn: Turn, plan: Plan, runner: BotRunner, budget: TurnBudget, on_token: TokenSink | None = None
) -> tuple[list[BotReply], list[BotReply]]:
    """Returns (replies shown to the user, specialists' contributions the leader used)."""
    consulted: list[BotReply] = []
    if plan.consult:
        consulted = list(await asyncio.gather(*(in_time(turn, h, runner.answer(h, turn, budget))
                                                for h in plan.consult)))
    notes = [r for r in consulted if r.ok]
    stream = on_token if len(plan.bots) == 1 else None  # interleaved streams would be unreadable
    replies = await asyncio.gather(
        *(in_time(turn, h, runner.answer(h, turn, budget, consulted=notes, on_token=stream)) for h in plan.bots)
    )
    return list(replies), consulted


async def in_time(turn: Turn, handle: str, answering: Awaitable[BotReply]) -> BotReply:
    """The bot's reply, or a failed one saying so when the turn's deadline comes first."""
    if turn.deadline is None:
        return await answering
    limit = asyncio.timeout_at(turn.deadline)
    try:
        async with limit:
            return await answering
    except TimeoutError:
        if not limit.expired():  # a TimeoutError of the bot's own, not the deadline's
            raise
    return BotReply(handle, "", ok=False, error=f"it ran out of time (the crew has {turn.time_limit:g} s per message)"
                                                "; please try again, or ask for less at once")
