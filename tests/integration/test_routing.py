"""Tier routing end to end: the real litellm sends each message to its tier's model on the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanofolks.config.loader import load_config, save_config
from nanofolks.config.schema import TIERS, BotSettings, TierConfig
from nanofolks.services import Services
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM

MESSAGES = {
    "simple": "Who wrote Pride and Prejudice?",
    "medium": "Write me a short email to my landlord asking to fix the heating.",
    "complex": "Analyze the pros and cons of moving our company to microservices, considering cost and risk.",
    "reasoning": "Prove that the square root of 2 is irrational.",
    "coding": "Write a Python function that checks whether a string is a palindrome.",
}


def route_config(home: Path, classifier: bool = False, timeout: float = 20) -> None:
    config = load_config(home / "config.json")
    config.routing.enabled = True
    config.routing.tiers = {tier: TierConfig(model=f"openai/tier-{tier}") for tier in TIERS}  # type: ignore[misc]
    config.routing.llm_classifier.enabled = classifier
    config.routing.llm_classifier.timeout = timeout  # generous: a loaded machine's first litellm call is slow
    save_config(config, home / "config.json")


def open_services(home: Path) -> Services:
    return Services.open(load_config(home / "config.json"), home / "nanofolks.db")


def tiers_used(services: Services) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in services.db.query("SELECT bot, model, tier FROM usage ORDER BY id")]


async def test_each_tier_reaches_its_model(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home)
    services = open_services(crew_home)
    try:
        room = services.rooms.general()
        for tier, text in MESSAGES.items():
            await services.pipeline.handle(room, f"@leader {text}")
            assert llm_server.requests[-1]["model"] == f"tier-{tier}", tier
            # A conversation moves down only when the rules are sure: start each tier from a clean room.
            with services.db.write() as conn:
                conn.execute("DELETE FROM routing_rooms")
        assert [row[2] for row in tiers_used(services)] == list(MESSAGES)  # usage knows each call's tier
    finally:
        services.close()


async def test_a_conversation_keeps_its_tier_until_the_rules_are_sure(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home)
    services = open_services(crew_home)
    try:
        room = services.rooms.general()
        answer = await services.pipeline.handle(room, "@coder " + MESSAGES["coding"])
        assert llm_server.requests[-1]["model"] == "tier-coding" and answer.parts[0].ok
        await services.pipeline.handle(room, "@coder and the other one?")  # unsure: stays on coding
        assert llm_server.requests[-1]["model"] == "tier-coding"
        await services.pipeline.handle(room, "@coder thanks!")  # surely simple: moves down
        assert llm_server.requests[-1]["model"] == "tier-simple"
        await services.pipeline.handle(room, "@coder " + MESSAGES["reasoning"])  # up at once
        assert llm_server.requests[-1]["model"] == "tier-reasoning"
        other = services.rooms.create("other", members=["leader"])
        await services.pipeline.handle(other, "@leader and the other one?")  # another room, its own tier
        assert llm_server.requests[-1]["model"] == "tier-simple"
    finally:
        services.close()


async def test_a_bots_own_model_and_mentions_win_over_routing(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home)
    config = load_config(crew_home / "config.json")
    config.agents.bots = {"coder": BotSettings(model="openai/coder-own")}
    save_config(config, crew_home / "config.json")
    services = open_services(crew_home)
    try:
        await services.pipeline.handle(services.rooms.general(), "@coder " + MESSAGES["reasoning"])
        assert [r["model"] for r in llm_server.requests] == ["coder-own"]  # the mentioned bot, its own model
        assert llm_server.handles_seen() == ["coder"]
        assert tiers_used(services) == [("coder", "openai/coder-own", "")]
    finally:
        services.close()


async def test_layer_two_asks_the_cheapest_model_only_when_unsure(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home, classifier=True)
    llm_server.add(Rule(system_contains="Sort the user's message", reply="Reasoning."))
    services = open_services(crew_home)
    try:
        room = services.rooms.general()
        await services.pipeline.handle(room, "@leader " + MESSAGES["coding"])  # sure: no classifier call
        assert [r["model"] for r in llm_server.requests] == ["tier-coding"]
        with services.db.write() as conn:
            conn.execute("DELETE FROM routing_rooms")
        await services.pipeline.handle(room, "@leader and the other one?")
        assert [r["model"] for r in llm_server.requests[1:]] == ["tier-simple", "tier-reasoning"]
        assert tiers_used(services)[1] == ("router", "openai/tier-simple", "simple")
    finally:
        services.close()


async def test_a_hung_classifier_times_out_to_the_rules_guess(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home, classifier=True, timeout=1)
    llm_server.add(Rule(system_contains="Sort the user's message", hang=True))
    services = open_services(crew_home)
    try:
        decision = await services.pipeline.router.classify("and the other one?")
        assert (decision.tier, decision.layer) == ("simple", 1)
    finally:
        services.close()


def test_routing_test_command_without_layer_two_makes_no_call(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home)
    result = run_cli("routing", "test", MESSAGES["reasoning"], "--json", home=crew_home, timeout=180)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tier"] == "reasoning" and data["layer"] == 1 and 0 < data["confidence"] <= 1
    assert data["model"] == "openai/tier-reasoning"
    unsure = json.loads(run_cli("routing", "test", "and the other one?", "--json", home=crew_home, timeout=180).stdout)
    assert unsure["layer"] == 1
    assert llm_server.requests == []


def test_routing_test_command_uses_layer_two_when_unsure(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home, classifier=True)
    llm_server.add(Rule(system_contains="Sort the user's message", reply="complex"))
    data = json.loads(run_cli("routing", "test", "and the other one?", "--json", home=crew_home, timeout=180).stdout)
    assert (data["tier"], data["layer"]) == ("complex", 2)
    assert [r["model"] for r in llm_server.requests] == ["tier-simple"]


def test_routing_status(crew_home: Path, llm_server: ScriptedLLM) -> None:
    assert json.loads(run_cli("routing", "status", "--json", home=crew_home, timeout=180).stdout)["enabled"] is False
    route_config(crew_home)
    data = json.loads(run_cli("routing", "status", "--json", home=crew_home, timeout=180).stdout)
    assert data["enabled"] is True
    assert data["tiers"]["coding"] == {"model": "openai/tier-coding", "configured": True}
    assert data["cheapest_model"] == "openai/tier-simple"
    text = run_cli("routing", "status", home=crew_home, timeout=180)
    assert text.returncode == 0 and "tier-coding" in text.stdout


async def test_analytics_measures_savings_and_names_unpriced_models(crew_home: Path, llm_server: ScriptedLLM) -> None:
    route_config(crew_home)
    config = load_config(crew_home / "config.json")
    config.routing.tiers = {"simple": TierConfig(model="openai/gpt-4o-mini"), "complex": TierConfig(model="openai/gpt-4o"),
                            "coding": TierConfig(model="openai/fake-coder")}  # type: ignore[misc]
    save_config(config, crew_home / "config.json")
    services = open_services(crew_home)
    try:
        room = services.rooms.general()
        for text in ("@leader hi", "@leader " + MESSAGES["complex"], "@leader " + MESSAGES["coding"]):
            await services.pipeline.handle(room, text)
            with services.db.write() as conn:
                conn.execute("DELETE FROM routing_rooms")
    finally:
        services.close()
    result = run_cli("routing", "analytics", "--json", home=crew_home, timeout=180)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["top_model"] == "openai/gpt-4o"  # the priciest tier model in litellm's price map
    assert set(data["by_tier"]) == {"simple", "complex", "coding"}
    simple, complex_ = data["by_tier"]["simple"], data["by_tier"]["complex"]
    assert simple["calls"] == 1 and 0 < simple["cost"] < simple["top_cost"]  # gpt-4o-mini is cheaper
    assert complex_["cost"] == pytest.approx(complex_["top_cost"])  # the same model: no saving
    assert data["unpriced_models"] == ["openai/fake-coder"] and data["by_tier"]["coding"]["unpriced"] == 1
    assert data["total"]["savings"] == pytest.approx(simple["top_cost"] - simple["cost"])
    assert "no price for openai/fake-coder" in data["notes"][0]
    text = run_cli("routing", "analytics", home=crew_home, timeout=180)
    assert "saved $" in text.stdout and "no price" in text.stdout
