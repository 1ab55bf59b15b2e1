"""Ahead of a room's first message, the local model evaluates what every prompt of a bot there starts
with (persona, tool instructions, skills) and keeps it as that bot's saved KV state (llm/kvstate.py):
the first message is then answered as fast as any later one. `onboard` does it for the leader of
#general, the gateway for every bot of #general in the background."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from nanofolks.agent.runner import BotRunner
from nanofolks.config.schema import is_local
from nanofolks.crew.crew import LEADER
from nanofolks.store.rooms import Room

log = logging.getLogger(__name__)


@dataclass
class Warmed:
    bot: str
    model: str
    tokens: int  # evaluated now; 0 when a saved state held them already
    seconds: float


def leader_first(room: Room) -> list[str]:
    """The room's bots in the order they are likely to answer: the leader first."""
    return sorted(room.members, key=lambda handle: handle != LEADER)


async def warm_room(runner: BotRunner, room: Room, handles: Iterable[str]) -> list[Warmed]:
    """Warm each of `handles` that answers with a local model in `room`, one after another (the model
    runs one call at a time: a turn waits for one bot's warm-up at most)."""
    warmed = []
    for handle in handles:
        if handle not in runner.crew.bots:
            continue
        model, prefix = runner.stable_prefix(handle, room)
        if not is_local(model):
            continue
        started = time.perf_counter()
        tokens = await runner.llm.warm(prefix, model=model, bot=handle, room_id=room.id)
        warmed.append(Warmed(handle, model, tokens, time.perf_counter() - started))
        log.info("local model warmed for @%s in #%s: %d tokens in %.1f s", handle, room.name, tokens,
                 warmed[-1].seconds)
    return warmed
