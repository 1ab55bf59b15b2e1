"""The bundled local model (SmolLM2-135M via llama-cpp-python) on this machine: load time, first-token
latency, decode and prompt speed, and the overhead of our `local_chat` path.

    python bench/local_model_bench.py --json [--runs 3] [--max-tokens 96] [--threads N]

- load_s: loading the GGUF file in this process (what the first message of a `nanofolks chat` pays).
- first_token_ms_p50: `local_chat` on short chat prompts, from the call to the first streamed piece.
- crew_first_token_ms_p50: the same with the real leader system prompt of the pirate crew (the prompt
  `nanofolks chat` sends), evaluated cold each time; crew_prompt_tokens is its size in SmolLM2 tokens.
- tokens_per_s: decode speed through `local_chat` (after the first piece).
- prompt_tokens_per_s: crew prompt tokens / its first-token time.
- Baseline in the same run: llama-cpp's raw `create_completion` streaming the same formatted prompt from
  the same loaded model; overhead_ratio = our tokens/s / raw tokens/s (1.0 means no overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanofolks.crew.crew import install_team  # noqa: E402
from nanofolks.crew.prompt import system_prompt  # noqa: E402
from nanofolks.llm.local import LoadedModel, default_threads, load_model, local_chat, resolve_model_path  # noqa: E402

MODEL = "local/smollm2"
PROMPTS = ["Hello! Who are you?", "What is the capital of France?", "Give me three tips for writing tests.",
           "Write a short poem about the sea."]
LONG = "Tell me a long story about a ship and its crew."


def crew_messages() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        crew = install_team(Path(tmp), "pirate_crew")
        system = system_prompt(crew.bots["leader"], crew, "general", "open", list(crew.bots))
    return [{"role": "system", "content": system}, {"role": "user", "content": "Hello crew!"}]


async def timed_chat(model: LoadedModel, messages: list[dict[str, str]], max_tokens: int) -> dict[str, float]:
    model.llama.reset()  # no prompt reuse from the previous run: every prompt is evaluated cold
    started = time.perf_counter()
    stamps: list[float] = []
    result = await local_chat(MODEL, messages, max_tokens, 0.0, lambda _: stamps.append(time.perf_counter()))
    end = time.perf_counter()
    return _timing(started, stamps, end, result.completion_tokens) | {"prompt_tokens": result.prompt_tokens}


def raw_chat(model: LoadedModel, messages: list[dict[str, str]], max_tokens: int) -> dict[str, float]:
    """The baseline: the same prompt through llama-cpp's plain completion stream, nothing of ours around it."""
    prompt = model.formatter(messages=messages).prompt
    tokens = model.tokenize(prompt)
    model.llama.reset()
    started = time.perf_counter()
    stamps: list[float] = []
    text = ""
    for chunk in model.llama.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, stream=True,
                                               stop=[model.formatter.eos_token], repeat_penalty=1.1):
        piece = chunk["choices"][0]["text"]
        if piece:
            stamps.append(time.perf_counter())
            text += piece
    end = time.perf_counter()
    return _timing(started, stamps, end, len(model.tokenize(text)) if text else 0)


def _timing(started: float, stamps: list[float], end: float, tokens: int) -> dict[str, float]:
    first = (stamps[0] - started) if stamps else float("nan")
    decode = (tokens - 1) / (end - stamps[0]) if stamps and tokens > 1 and end > stamps[0] else float("nan")
    return {"first_token_ms": first * 1000, "tokens_per_s": decode, "tokens": tokens}


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 2)


async def run(runs: int, max_tokens: int, threads: int) -> dict[str, Any]:
    path = resolve_model_path(MODEL)
    started = time.perf_counter()
    model = load_model(path, threads)
    load_s = time.perf_counter() - started
    await timed_chat(model, [{"role": "user", "content": "Hi"}], 4)  # warm-up: first-call allocations

    short = [await timed_chat(model, [{"role": "user", "content": p}], 16) for p in PROMPTS]
    crew = [await timed_chat(model, crew_messages(), 8) for _ in range(runs)]
    long_messages = [{"role": "user", "content": LONG}]
    ours, raw = [], []
    for _ in range(runs):  # interleaved, so both sides see the same machine load
        ours.append(await timed_chat(model, long_messages, max_tokens))
        raw.append(raw_chat(model, long_messages, max_tokens))

    ours_tps = p50([r["tokens_per_s"] for r in ours])
    raw_tps = p50([r["tokens_per_s"] for r in raw])
    crew_first = p50([r["first_token_ms"] for r in crew])
    return {
        "bench": "local_model",
        "model": MODEL,
        "model_path": str(path),
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "threads": threads,
        "load_s": round(load_s, 3),
        "first_token_ms_p50": p50([r["first_token_ms"] for r in short]),
        "crew_prompt_tokens": int(crew[0]["prompt_tokens"]),
        "crew_first_token_ms_p50": crew_first,
        "prompt_tokens_per_s": round(crew[0]["prompt_tokens"] / (crew_first / 1000), 1),
        "tokens_per_s": ours_tps,
        "decode_tokens_p50": p50([r["tokens"] for r in ours]),
        "baseline_raw_tokens_per_s": raw_tps,
        "overhead_ratio": round(ours_tps / raw_tps, 3),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    result = asyncio.run(run(args.runs, args.max_tokens, args.threads))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
