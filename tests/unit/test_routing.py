"""Tier routing's pure parts: layer-1 rules, stickiness, which model a tier means, the config's form."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nanofolks.config.loader import ConfigError, validate
from nanofolks.config.schema import BotSettings, Config, TierConfig
from nanofolks.llm.client import LLM
from nanofolks.routing.router import stick
from nanofolks.routing.rules import Decision, classify, distance
from nanofolks.routing.tiers import cheapest_model, tier_model


@pytest.mark.parametrize(("text", "tier"), [
    ("hi", "simple"),
    ("merci beaucoup", "simple"),
    ("Who wrote Pride and Prejudice?", "simple"),
    ("Write me a short email to my landlord asking to fix the heating.", "medium"),
    ("Erkläre mir, wie Photosynthese funktioniert", "medium"),
    ("Analyze the pros and cons of moving from a monolith to microservices, considering cost and risk.", "complex"),
    ("Prove that the square root of 2 is irrational.", "reasoning"),
    ("Solve for x: 3x + 7 = 2x - 5", "reasoning"),
    ("证明根号2是无理数。", "reasoning"),
    ("Fix this bug:\n```python\ndef avg(xs):\n    return sum(xs) / len(xs)\n```", "coding"),
    ("用Python写一个函数，判断一个数是不是质数。", "coding"),
    ("Traceback (most recent call last): ModuleNotFoundError: No module named 'requests'", "coding"),
])
def test_layer_one_tiers(text: str, tier: str) -> None:
    assert classify(text).tier == tier


def test_clear_messages_are_confident_and_cueless_ones_are_not() -> None:
    assert classify("Prove that there are infinitely many primes.").confident
    assert classify("hello there").confident
    unsure = classify("and the other one?")
    assert not unsure.confident and unsure.layer == 1
    assert 0 <= classify("").confidence <= 1  # empty text is a guess, not an error


def test_a_tie_goes_to_the_higher_tier() -> None:
    # "write" (medium) and "script" (coding) weigh the same: the stronger model is the safer mistake.
    assert classify("write a script").tier == "coding"


def test_ladder_distance() -> None:
    assert distance("simple", "medium") == 1 and distance("simple", "coding") == 4 and distance("complex", "complex") == 0


def test_sticky_moves_up_at_once_and_down_only_when_layer_one_is_confident() -> None:
    assert stick(None, Decision("simple", 0.1)).tier == "simple"
    assert stick("medium", Decision("coding", 0.1)).tier == "coding"  # up at once, however unsure
    kept = stick("coding", Decision("simple", 0.2))
    assert kept.tier == "coding" and kept.sticky
    assert stick("coding", Decision("simple", 0.9)).tier == "simple"  # layer 1 confident: down
    assert stick("coding", Decision("medium", 0.9, layer=2)).tier == "coding"  # layer 2 never lowers
    assert not stick("medium", Decision("medium", 0.1)).sticky


def _routed(**tiers: str) -> Config:
    config = Config()
    config.agents.defaults.model = "openai/default"
    config.routing.enabled = True
    config.routing.tiers = {name: TierConfig(model=model) for name, model in tiers.items()}  # type: ignore[misc]
    return config


def test_a_tier_names_its_model_and_falls_back_to_the_bots_model() -> None:
    config = _routed(simple="openai/gpt-4o-mini", coding="anthropic/claude-sonnet-4-5")
    llm = LLM(config)
    assert llm.route_model("coder", "coding") == ("anthropic/claude-sonnet-4-5", "coding")
    assert llm.route_model("coder", "complex") == ("openai/default", "complex")  # no model for complex
    assert llm.route_model("coder", "") == ("openai/default", "")
    config.agents.bots = {"coder": BotSettings(model="openai/own")}
    assert llm.route_model("coder", "coding") == ("openai/own", "")  # the bot's own model overrides routing
    config.routing.enabled = False
    assert llm.route_model("leader", "coding") == ("openai/default", "coding")
    assert tier_model(config, "coding") == ""


def test_cheapest_model_is_the_lowest_tier_with_a_model() -> None:
    assert cheapest_model(_routed(medium="openai/m", complex="openai/c")) == "openai/m"
    assert cheapest_model(_routed(simple="openai/s", medium="openai/m")) == "openai/s"
    assert cheapest_model(_routed()) == "openai/default"
    off = _routed(simple="openai/s")
    off.routing.enabled = False
    assert cheapest_model(off) == "openai/default"


def test_the_readme_form_parses() -> None:
    config = validate({"routing": {"enabled": True, "tiers": {"simple": {"model": "openai/gpt-4o-mini"},
                                                              "reasoning": {"model": "openai/o3"}},
                                   "llmClassifier": {"enabled": False}},
                       "spend": {"dailyLimitUsd": 5, "bots": {"coder": {"dailyLimitUsd": 1.5}}}})
    assert config.routing.tiers["simple"].model == "openai/gpt-4o-mini"
    assert not config.routing.llm_classifier.enabled
    assert config.spend.daily_limit_usd == 5 and config.spend.bots["coder"].daily_limit_usd == 1.5
    assert not Config().routing.enabled and Config().spend.daily_limit_usd is None  # off by default


@pytest.mark.parametrize(("raw", "says"), [
    ({"routing": {"tiers": {"cheap": {"model": "x"}}}}, "cheap"),
    ({"routing": {"llmClassifier": {"timeout": 0}}}, "timeout"),
    ({"spend": {"dailyLimitUsd": -1}}, "dailyLimitUsd"),
])
def test_bad_routing_and_spend_config_is_a_clear_error(raw: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        validate(raw)


def test_heartbeats_use_the_cheapest_tier_when_routing_is_on() -> None:
    from nanofolks.routines.heartbeat import cheapest_model as heartbeat_model

    config = _routed(simple="openai/s", coding="openai/c")
    config.agents.bots = {"coder": BotSettings(model="openai/own")}
    assert heartbeat_model(LLM(config), "coder") == "openai/s"
    config.routing.enabled = False
    assert heartbeat_model(LLM(config), "coder") == "openai/own"


class Recording(LLM):
    """Our client with the provider call replaced: records (bot, model) and answers by the caller's job."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.calls: list[tuple[str, str]] = []

    async def chat(self, messages, *, model, bot="", **_):  # noqa: ANN001, ANN003
        from nanofolks.llm.results import ChatResult

        self.calls.append((bot, model))
        answers = {"intent": "question", "memory": '{"items": []}'}
        return ChatResult(text=answers.get(bot, f"{bot} here"), model=model)


async def test_background_model_calls_use_the_cheapest_tier(tmp_path: Path) -> None:
    """Classifying a message, reading entities and distilling memory need no strength: the cheapest
    tier answers them, not the leader's model."""
    from nanofolks.crew.crew import install_team
    from nanofolks.memory.service import MemoryService
    from nanofolks.orchestrator.pipeline import Pipeline
    from nanofolks.rooms.rooms import Rooms
    from nanofolks.store.db import Database
    from nanofolks.store.messages import MessageRepo
    from nanofolks.store.rooms import RoomRepo
    from tests.fakes.embedder import HashEmbedder

    config = _routed(simple="openai/cheap", complex="openai/strong")
    config.agents.bots = {"leader": BotSettings(model="openai/leader-own")}
    config.orchestrator.llm_intent = True
    config.memory.llm_extraction = True
    config.memory.consolidation.llm = True
    db = Database(tmp_path / "nf.db")
    crew = install_team(tmp_path / "ws", "pirate_crew")
    room = Rooms(RoomRepo(db), crew).general()
    llm = Recording(config)
    memory = MemoryService(config, db, embedder=HashEmbedder(), llm=llm)
    await Pipeline(config, crew, llm, MessageRepo(db)).handle(room, "lunch plans with Rosa tomorrow")
    await asyncio.to_thread(memory.index_pending)
    await asyncio.to_thread(memory.consolidate, None, False, False)
    memory.close()
    db.close()
    background = {bot: model for bot, model in llm.calls if bot in ("intent", "memory")}
    assert background == {"intent": "openai/cheap", "memory": "openai/cheap"}
    assert [b for b, _ in llm.calls].count("memory") == 2  # entities while indexing, then consolidation
    assert ("leader", "openai/leader-own") in llm.calls  # the answer itself keeps the bot's own model
