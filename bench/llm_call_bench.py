"""Per-call latency of one chat completion through litellm's two OpenAI paths and our client, against raw httpx.

    python bench/llm_call_bench.py --json [--calls 200] [--history 40]

All in one process, against the scripted OpenAI-compatible server (tests/fakes/llm_server.py), which answers
at once; the prompt is a ~300-word system message plus --history alternating user/assistant messages.
Each way is warmed up, then timed over --calls sequential calls (p50 and p99 in ms):

- raw_httpx: a bare, reused keep-alive httpx.AsyncClient POSTing the same JSON body (the floor).
- litellm_sdk: litellm.acompletion through the openai SDK (EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER=false).
- litellm_base_handler: the same call through litellm's own HTTP handler (that variable = true).
- nanofolks_llm: nanofolks.llm.client.LLM.chat (the base handler, plus our retries and usage recording).

ratio_p50 gives each litellm/nanofolks p50 over the raw_httpx p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.stats import percentile, report  # noqa: E402
from nanofolks.config.schema import Config  # noqa: E402
from nanofolks.llm.client import LLM  # noqa: E402
from nanofolks.llm.env import import_litellm  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402
from nanofolks.store.usage import UsageRepo  # noqa: E402
from tests.fakes.llm_server import ScriptedLLM  # noqa: E402

MODEL = "openai/fake-model"
API_KEY = "sk-bench"
WARMUP = 20
HANDLER_ENV = "EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER"
PERSONA = ("You are Tester (@coder), the crew's careful engineer: you read the code before changing it, "
           "explain trade-offs plainly, keep answers short, and ask when the request is ambiguous. ")


def build_messages(history: int) -> list[dict[str, str]]:
    words = PERSONA.split()
    system = " ".join(words[i % len(words)] for i in range(300))
    messages = [{"role": "system", "content": system}]
    for i in range(history):
        # Alternate so that the newest message is the user's, as in a real turn.
        role = "user" if (history - i) % 2 == 1 else "assistant"
        messages.append({"role": role, "content": f"Message {i}: could you look at step {i} of the plan again?"})
    return messages


async def timed(call: Callable[[], Awaitable[Any]], calls: int) -> dict[str, float]:
    for _ in range(WARMUP):
        await call()
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99)}


async def run(base_url: str, messages: list[dict[str, str]], calls: int, db_dir: Path) -> dict[str, dict]:
    litellm = import_litellm()
    results: dict[str, dict] = {}

    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        # litellm strips the provider prefix before sending, so the server sees the same body.
        body = {"model": MODEL.split("/", 1)[1], "messages": messages}

        async def raw() -> None:
            response = await client.post(f"{base_url}/chat/completions", json=body)
            response.raise_for_status()
            response.json()

        results["raw_httpx"] = await timed(raw, calls)

    async def via_litellm() -> None:
        await litellm.acompletion(model=MODEL, messages=messages, api_base=base_url, api_key=API_KEY,
                                  num_retries=0, max_retries=0, timeout=30)

    # litellm reads the variable at every call, so switching it between runs switches the path.
    os.environ[HANDLER_ENV] = "false"
    results["litellm_sdk"] = await timed(via_litellm, calls)
    os.environ[HANDLER_ENV] = "true"
    results["litellm_base_handler"] = await timed(via_litellm, calls)

    config = Config()
    config.providers.openai.api_key = API_KEY
    config.providers.openai.api_base = base_url
    db = Database(db_dir / "usage.db")
    try:
        llm = LLM(config, UsageRepo(db))
        results["nanofolks_llm"] = await timed(lambda: llm.chat(messages, model=MODEL, bot="coder"), calls)
    finally:
        db.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--history", type=int, default=40)
    args = parser.parse_args()
    messages = build_messages(args.history)
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLM() as llm:
        variants = asyncio.run(run(llm.base_url, messages, args.calls, Path(tmp)))
    floor = variants["raw_httpx"]["p50_ms"]
    result = {
        "bench": "llm_call",
        "calls": args.calls, "history": args.history, "messages": len(messages),
        **{name: {k: round(v, 2) for k, v in stats.items()} for name, stats in variants.items()},
        "ratio_p50": {name: round(stats["p50_ms"] / floor, 2)
                      for name, stats in variants.items() if name != "raw_httpx"},
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
