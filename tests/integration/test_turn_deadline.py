"""One deadline per turn: the real litellm against the scripted server's slow model (`[[delay:N]]`). Every
model call and retry of a message ends by `orchestrator.turnDeadline`, the user is told plainly, the bots that
answered in time are still heard, and the next message in the room waits no longer than the deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.config.loader import load_config, save_config
from nanofolks.services import Services
from tests.fakes.llm_server import Rule, ScriptedLLM

DEADLINE = 2.0


@pytest.fixture
def services(crew_home: Path) -> Iterator[Services]:
    config = load_config(crew_home / "config.json")
    config.orchestrator.turn_deadline = DEADLINE
    config.agents.defaults.timeout = 5  # per attempt: without the deadline, 3 attempts and backoff take > 15 s
    config.agents.defaults.max_retries = 2
    config.memory.enabled = False
    save_config(config, crew_home / "config.json")
    services = Services.open()
    asyncio.run(services.llm.ready())  # as the CLI and the gateway do: the library loads before any deadline
    yield services
    services.close()


async def test_a_slow_model_is_stopped_at_the_deadline_retries_included_and_the_user_told(
        services: Services, llm_server: ScriptedLLM) -> None:
    room = services.rooms.general()
    started = time.monotonic()
    answer = await services.pipeline.handle(room, "[[delay:60]] what is the tide doing?")
    took = time.monotonic() - started
    assert took < DEADLINE + 6, took  # not 3 attempts of 5 s and their backoff
    assert not any(p.ok for p in answer.parts)
    text = answer.markdown()
    assert "ran out of time" in text and f"{DEADLINE:g} s per message" in text, text
    stored = services.db.query("SELECT role, content FROM messages WHERE room_id = ? ORDER BY id", (room.id,))
    assert [r[0] for r in stored] == ["user"]  # the question is kept; no empty reply is stored


async def test_the_next_message_in_the_room_waits_no_longer_than_the_deadline(
        services: Services, llm_server: ScriptedLLM) -> None:
    room = services.rooms.general()
    slow = asyncio.ensure_future(services.pipeline.handle(room, "[[delay:60]] a long question"))
    await asyncio.sleep(0.2)  # the slow turn holds the room first
    started = time.monotonic()
    quick = await services.pipeline.handle(room, "a quick one")
    assert time.monotonic() - started < DEADLINE + 6
    assert "a quick one" in quick.markdown()  # answered, and its own message
    assert "ran out of time" in (await slow).markdown()


async def test_the_bots_that_answered_in_time_are_still_heard(services: Services, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(handle="coder", delay=60))
    answer = await services.pipeline.handle(services.rooms.general(), "@all report, crew!")
    heard = {p.bot for p in answer.parts if p.ok}
    assert "leader" in heard and "coder" not in heard
    assert "@coder could not answer: it ran out of time" in answer.markdown()
