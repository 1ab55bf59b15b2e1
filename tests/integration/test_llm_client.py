"""The LLM client against the scripted server through the real litellm: retries, errors, usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanofolks.config.schema import BotSettings, Config
from nanofolks.llm.client import LLM, LLMError
from nanofolks.store.db import Database
from nanofolks.store.usage import UsageRepo
from tests.fakes.llm_server import Rule, ScriptedLLM

SYSTEM = {"role": "system", "content": "You are Tester (@coder), a test."}


def make_llm(server: ScriptedLLM, tmp_path: Path, retries: int = 3) -> tuple[LLM, UsageRepo]:
    config = Config()
    config.providers.openai.api_key = "sk-test"
    config.providers.openai.api_base = server.base_url
    config.agents.defaults.max_retries = retries
    config.agents.defaults.timeout = 5
    usage = UsageRepo(Database(tmp_path / "u.db"))
    return LLM(config, usage), usage


async def test_rate_limit_and_server_errors_are_retried(llm_server: ScriptedLLM, tmp_path: Path) -> None:
    llm_server.add(Rule(status=429, times=1), Rule(status=503, times=1), Rule(reply="finally"))
    llm, usage = make_llm(llm_server, tmp_path)
    result = await llm.chat([SYSTEM, {"role": "user", "content": "hi"}], model="openai/fake-model", bot="coder")
    assert result.text == "finally"
    assert len(llm_server.requests) == 3
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    totals = usage.totals()
    assert (totals["calls"], totals["failed"]) == (1, 0)


async def test_gives_up_after_max_retries_with_a_clear_error(llm_server: ScriptedLLM, tmp_path: Path) -> None:
    llm_server.add(Rule(status=500))
    llm, usage = make_llm(llm_server, tmp_path, retries=2)
    with pytest.raises(LLMError, match="openai/fake-model failed"):
        await llm.chat([SYSTEM, {"role": "user", "content": "hi"}], model="openai/fake-model")
    assert len(llm_server.requests) == 3  # the first try and two retries, nothing hidden underneath
    assert usage.totals()["failed"] == 1


async def test_auth_errors_are_not_retried(llm_server: ScriptedLLM, tmp_path: Path) -> None:
    llm_server.add(Rule(status=401, reply="bad key"))
    llm, _ = make_llm(llm_server, tmp_path)
    with pytest.raises(LLMError, match="AuthenticationError"):
        await llm.chat([SYSTEM, {"role": "user", "content": "hi"}], model="openai/fake-model")
    assert len(llm_server.requests) == 1


async def test_timeout_becomes_llm_error(llm_server: ScriptedLLM, tmp_path: Path) -> None:
    llm_server.add(Rule(hang=True))
    llm, _ = make_llm(llm_server, tmp_path, retries=0)
    llm.config.agents.defaults.timeout = 1
    with pytest.raises(LLMError, match="Timeout"):
        await llm.chat([SYSTEM, {"role": "user", "content": "hi"}], model="openai/fake-model")


async def test_streaming_delivers_pieces_and_the_whole(llm_server: ScriptedLLM, tmp_path: Path) -> None:
    llm_server.add(Rule(reply="one two three four five six"))
    llm, _ = make_llm(llm_server, tmp_path)
    pieces: list[str] = []
    result = await llm.chat([SYSTEM, {"role": "user", "content": "count"}], model="openai/fake-model",
                            on_token=pieces.append)
    assert len(pieces) > 1
    assert "".join(pieces) == result.text == "one two three four five six"


async def test_cost_is_recorded_for_priced_models_and_none_for_unknown(llm_server: ScriptedLLM,
                                                                       tmp_path: Path) -> None:
    llm, usage = make_llm(llm_server, tmp_path)
    messages = [SYSTEM, {"role": "user", "content": "hi"}]
    priced = await llm.chat(messages, model="openai/gpt-4o-mini", bot="coder")
    assert priced.cost is not None and priced.cost > 0
    unpriced = await llm.chat(messages, model="openai/fake-model", bot="coder")
    assert unpriced.cost is None
    totals = usage.totals()
    assert (totals["calls"], totals["failed"]) == (2, 0)
    assert totals["cost"] == pytest.approx(priced.cost)  # the unpriced call adds nothing (NULL in SUM)


async def test_per_bot_model_override(tmp_path: Path) -> None:
    config = Config()
    config.agents.bots = {"coder": BotSettings(model="openai/other")}
    llm = LLM(config)
    assert llm.model_for("coder") == "openai/other"
    assert llm.model_for("leader") == config.agents.defaults.model


@pytest.mark.parametrize(("status", "plain"), [
    (401, "the model provider refused our credentials"),
    (429, "the model provider is rate limiting us; please try again in a minute"),
    (503, "the model could not be reached"),
    (400, "the model could not answer"),
])
async def test_chat_users_get_a_plain_line_and_the_log_the_provider_text(llm_server: ScriptedLLM, tmp_path: Path,
                                                                          status: int, plain: str) -> None:
    raw = "Incorrect API key provided: sk-live-123456. Contact support at https://provider.example/help"
    llm_server.add(Rule(status=status, reply=raw))
    llm, _ = make_llm(llm_server, tmp_path, retries=0)
    with pytest.raises(LLMError) as caught:
        await llm.chat([SYSTEM, {"role": "user", "content": "hi"}], model="openai/fake-model", bot="coder")
    assert caught.value.plain == plain and "sk-live" not in caught.value.plain
    assert "Incorrect API key" in str(caught.value)  # the detail stays, for the log
