"""Warming the local model ahead of a room's first message: what is warmed is how the bot's real prompt
starts, and bots that answer with a provider are skipped."""

from __future__ import annotations

from pathlib import Path

from nanofolks.agent.warmup import leader_first, warm_room
from tests.fakes.llm_server import ScriptedLLM


async def test_bots_on_a_provider_model_are_not_warmed_and_the_leader_comes_first(
        crew_home: Path, llm_server: ScriptedLLM) -> None:
    from nanofolks.services import Services

    services = Services.open()
    try:
        general = services.rooms.general()
        order = leader_first(general)
        assert order[0] == "leader" and sorted(order) == sorted(general.members)
        assert await warm_room(services.pipeline.runner, general, order) == []
        model, prefix = services.pipeline.runner.stable_prefix("leader", general)
        assert model == "openai/fake-model" and [m["role"] for m in prefix] == ["system"]
        assert llm_server.requests == []  # nothing was sent to the provider
        await services.pipeline.handle(general, "Hello crew!")
    finally:
        services.close()
    sent = llm_server.requests[0]["messages"]
    assert sent[0] == prefix[0] and sent[-1]["content"] == "Hello crew!"  # the real prompt starts with it
