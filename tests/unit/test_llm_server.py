"""Tests for the scripted fake LLM server, driven by the REAL litellm over HTTP."""

import os

# Keep litellm offline: local cost map + bundled tiktoken files (must precede the import).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import importlib.util  # noqa: E402

_spec = importlib.util.find_spec("litellm")
if _spec is not None and _spec.origin:
    os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR",
        os.path.join(os.path.dirname(_spec.origin), "litellm_core_utils", "tokenizers"),
    )

import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import litellm  # noqa: E402
import pytest  # noqa: E402

from tests.fakes.llm_server import Rule, ScriptedLLM  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
LEADER_SYSTEM = "You are Blackbeard (@leader), captain of the crew."
CODER_SYSTEM = "You are Sparrow (@coder), the crew's engineer."


def chat(system: str | None, user: str) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}]


async def ask(llm: ScriptedLLM, messages: list[dict], **kwargs):
    """One real litellm call against the fake server (no retries)."""
    kwargs.setdefault("num_retries", 0)
    return await litellm.acompletion(
        model="openai/fake-model",
        api_base=llm.base_url,
        api_key="sk-test",
        messages=messages,
        **kwargs,
    )


@pytest.fixture
def llm():
    with ScriptedLLM() as server:
        yield server


# --------------------------------------------------------------------------- chat


@pytest.mark.asyncio
async def test_default_reply_echoes_handle_and_user_message(llm):
    resp = await ask(llm, chat(LEADER_SYSTEM, "Where is the treasure?"))
    assert resp.choices[0].message.content == "[@leader] Where is the treasure?"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0

    # No handle in the system prompt -> "assistant"; long messages are cut to 80 chars.
    long_msg = "x" * 200
    resp = await ask(llm, chat(None, long_msg))
    assert resp.choices[0].message.content == "[@assistant] " + "x" * 80

    assert len(llm.requests) == 2
    assert llm.requests[0]["messages"][-1]["content"] == "Where is the treasure?"
    assert llm.handles_seen() == ["leader", None]


@pytest.mark.asyncio
async def test_rule_matches_on_handle_and_contains(llm):
    llm.add(Rule(handle="leader", contains="PLAN", reply="{handle} plans: {user}"))

    resp = await ask(llm, chat(LEADER_SYSTEM, "What is the plan?"))
    assert resp.choices[0].message.content == "leader plans: What is the plan?"

    # Same text from another bot, or the leader without the keyword: default echo.
    resp = await ask(llm, chat(CODER_SYSTEM, "What is the plan?"))
    assert resp.choices[0].message.content == "[@coder] What is the plan?"
    resp = await ask(llm, chat(LEADER_SYSTEM, "Hello"))
    assert resp.choices[0].message.content == "[@leader] Hello"


@pytest.mark.asyncio
async def test_system_contains_and_safe_templates(llm):
    llm.add(Rule(system_contains="ENGINEER", reply='{"json": true} for {handle}'))
    resp = await ask(llm, chat(CODER_SYSTEM, "hi"))
    assert resp.choices[0].message.content == '{"json": true} for coder'


@pytest.mark.asyncio
async def test_native_tool_calls_then_tool_result(llm):
    args = {"path": "notes.md", "content": "Yo ho"}
    llm.add(
        Rule(has_tool_result=False, tool_calls=[{"name": "write_file", "arguments": args}]),
        Rule(has_tool_result=True, reply="File written."),
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "write_file",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                },
            },
        }
    ]
    messages = chat(CODER_SYSTEM, "Write the notes")

    resp = await ask(llm, messages, tools=tools)
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert call.id.startswith("call_")
    assert call.function.name == "write_file"
    assert json.loads(call.function.arguments) == args

    # Second turn carries the tool result -> the has_tool_result=True rule answers.
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "ok"},
    ]
    resp = await ask(llm, messages, tools=tools)
    assert resp.choices[0].message.content == "File written."
    assert not resp.choices[0].message.tool_calls
    assert llm.requests[-1]["tools"][0]["function"]["name"] == "write_file"


@pytest.mark.asyncio
async def test_streaming_text_is_assembled_from_chunks(llm):
    reply = "Fifteen men on the dead man's chest, yo ho ho!"
    llm.add(Rule(reply=reply))

    stream = await ask(llm, chat(LEADER_SYSTEM, "Sing"), stream=True, stream_options={"include_usage": True})
    pieces, finish = [], None
    async for chunk in stream:
        if chunk.choices:
            if chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish

    assert "".join(pieces) == reply
    assert len(pieces) > 1  # really delivered in several deltas
    assert finish == "stop"
    assert llm.requests[-1]["stream"] is True


@pytest.mark.asyncio
async def test_streaming_tool_calls(llm):
    args = {"path": "a.txt"}
    llm.add(Rule(tool_calls=[{"name": "read_file", "arguments": args}]))
    stream = await ask(llm, chat(CODER_SYSTEM, "Read it"), stream=True)
    chunks = [c async for c in stream]
    full = litellm.stream_chunk_builder(chunks)
    call = full.choices[0].message.tool_calls[0]
    assert call.function.name == "read_file"
    assert json.loads(call.function.arguments) == args


# --------------------------------------------------------------------------- failures & timing


@pytest.mark.asyncio
async def test_500_rule_raises_litellm_error(llm):
    llm.add(Rule(status=500, reply="kraken ate the GPU"))
    with pytest.raises(litellm.exceptions.InternalServerError) as exc_info:
        await ask(llm, chat(LEADER_SYSTEM, "hi"), max_retries=0)
    assert exc_info.value.status_code == 500
    assert "kraken ate the GPU" in str(exc_info.value)
    assert len(llm.requests) == 1  # no hidden retries


@pytest.mark.asyncio
async def test_429_rule_raises_rate_limit_error(llm):
    llm.add(Rule(status=429))
    with pytest.raises(litellm.exceptions.RateLimitError):
        await ask(llm, chat(LEADER_SYSTEM, "hi"), max_retries=0)


@pytest.mark.asyncio
async def test_delay_rule_slows_the_answer(llm):
    llm.add(Rule(delay=0.6, reply="slow"))
    start = time.monotonic()
    resp = await ask(llm, chat(LEADER_SYSTEM, "hi"))
    assert time.monotonic() - start >= 0.6
    assert resp.choices[0].message.content == "slow"


@pytest.mark.asyncio
async def test_hang_rule_makes_client_time_out(llm):
    llm.add(Rule(hang=True))
    start = time.monotonic()
    with pytest.raises(litellm.exceptions.Timeout):
        await ask(llm, chat(LEADER_SYSTEM, "hi"), timeout=0.5, max_retries=0)
    assert time.monotonic() - start < 5


@pytest.mark.asyncio
async def test_times_limits_how_often_a_rule_fires(llm):
    once = Rule(reply="first and only", times=1)
    llm.add(once)
    first = await ask(llm, chat(LEADER_SYSTEM, "hi"))
    second = await ask(llm, chat(LEADER_SYSTEM, "hi again"))
    assert first.choices[0].message.content == "first and only"
    assert second.choices[0].message.content == "[@leader] hi again"
    assert once.fired == 1


# --------------------------------------------------------------------------- other endpoints


@pytest.mark.asyncio
async def test_embeddings_are_deterministic_unit_vectors(llm):
    async def embed(texts):
        resp = await litellm.aembedding(
            model="openai/fake-embed", api_base=llm.base_url, api_key="sk-test", input=texts
        )
        return [d["embedding"] for d in resp.data]

    a, b = await embed(["alpha", "beta"])
    (a_again,) = await embed(["alpha"])
    assert len(a) == 64
    assert a == pytest.approx(a_again)
    assert a != pytest.approx(b)
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0, abs=1e-5)


def test_models_and_unknown_paths():
    import httpx

    with ScriptedLLM() as server:
        models = httpx.get(f"{server.base_url}/models").json()
        assert models["object"] == "list" and models["data"][0]["object"] == "model"
        missing = httpx.post(f"{server.base_url}/nope", json={})
        assert missing.status_code == 404 and "error" in missing.json()


# --------------------------------------------------------------------------- CLI mode


@pytest.mark.asyncio
async def test_cli_mode_prints_ready_and_serves_rules(tmp_path):
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps([{"handle": "leader", "reply": "from subprocess"}]))
    log_file = tmp_path / "calls.jsonl"

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.llm_server",
            "--port",
            "0",
            "--rules",
            str(rules_file),
            "--log",
            str(log_file),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.split(" ", 1)[1]
        assert base_url.endswith("/v1")

        resp = await litellm.acompletion(
            model="openai/fake-model",
            api_base=base_url,
            api_key="sk-test",
            messages=chat(LEADER_SYSTEM, "hi"),
            num_retries=0,
        )
        assert resp.choices[0].message.content == "from subprocess"

        logged = [json.loads(x) for x in log_file.read_text().splitlines()]
        assert len(logged) == 1
        assert logged[0]["messages"][-1]["content"] == "hi"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
