"""The bundled local model (SmolLM2-135M via llama-cpp-python) on this machine, answering the crew prompt:
first-token latency cold and warm, prompt and decode speed, each beside raw llama.cpp (the same file,
build and thread count, in the same run).

    python bench/local_model_bench.py --json [--runs 3] [--max-tokens 96] [--threads N]

- cold_first_token_ms_p50: a fresh process (`nanofolks chat -m`) from loading the model to the first token
  of the room's second message, with the state its first message saved on disk; raw: a fresh process
  loading the model and evaluating the whole prompt. cold_empty_first_token_ms_p50: the same with nothing
  saved (the first message ever, without onboard's warm-up). cold_onboarded_first_token_ms_p50: a
  brand-new home's first message after onboard's warm-up (agent/warmup.py) saved the leader's instructions.
- warm_first_token_ms_p50: the leader's second turn of a room in a running process, after another bot
  (the coder) answered in between; raw: llama.cpp evaluating that prompt from an empty context.
- prompt_tokens_per_s: the crew prompt evaluated from an empty context through `local_chat` (tokens /
  first-token time), beside raw llama.cpp evaluating the same tokens.
- decode_tokens_per_s: a long answer through `local_chat` after its first token, beside raw llama.cpp's
  completion stream of the same prompt (raw_decode_tokens_per_s, llama-cpp-python's high-level API) and
  beside llama.cpp with nothing in Python between tokens but a loop of llama_decode and llama.cpp's own
  greedy sampler (raw_lowlevel_decode_tokens_per_s); *_crew_context: the same after the crew prompt
  (about 1000 tokens in the KV cache, which each new token attends to).
- loadavg_1m_*: the machine's load around the run. On a shared machine, run it in a session of its own
  with a higher priority to see a quiet machine's figures:
  `setsid sh -c 'echo -20 > /proc/self/autogroup; exec nice -n -20 python bench/local_model_bench.py --json'`
- threads: measured on this machine by nanofolks/llm/threads.py (unless --threads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import report  # noqa: E402
from nanofolks.crew.crew import install_team  # noqa: E402
from nanofolks.crew.prompt import system_prompt  # noqa: E402

MODEL = "local/smollm2"
FIRST, SECOND = "Hello crew!", "What should we do first today?"
SLOT = "leader in room 1"  # the leader's KV state in the room the cold runs use
LONG = "Tell me a long story about a ship and its crew."


def crew_system(handle: str) -> str:
    """The full system prompt of one bot of the pirate crew in #general."""
    with tempfile.TemporaryDirectory() as tmp:
        crew = install_team(Path(tmp), "pirate_crew")
        return system_prompt(crew.bots[handle], crew, "general", "open", list(crew.bots))


def room(reply: str | None) -> list[dict[str, str]]:
    """The leader's prompt for the room's first message, or for its second after `reply`."""
    messages = [{"role": "system", "content": crew_system("leader")}, {"role": "user", "content": FIRST}]
    if reply is not None:
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": SECOND}]
    return messages


async def ours(messages: list[dict[str, str]], max_tokens: int, slot: str | None) -> dict[str, Any]:
    """One answer through nanofolks' local_chat: first-token time, decode speed, the text."""
    from nanofolks.llm.local import local_chat

    started = time.perf_counter()
    stamps: list[float] = []
    result = await local_chat(MODEL, messages, max_tokens, 0.0, lambda _: stamps.append(time.perf_counter()),
                              slot=slot)
    return _timing(started, stamps, time.perf_counter(), result.completion_tokens) | {"text": result.text}


def raw(model: Any, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """The baseline: llama-cpp's plain completion stream of the same tokens from an empty context."""
    tokens, stops = model.prompt_tokens(messages)
    model.llama.reset()
    started = time.perf_counter()
    stamps: list[float] = []
    text = ""
    for chunk in model.llama.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, stream=True,
                                               stop=stops, repeat_penalty=1.1):
        piece = chunk["choices"][0]["text"]
        if piece:
            stamps.append(time.perf_counter())
            text += piece
    end = time.perf_counter()
    return _timing(started, stamps, end, len(model.tokenize(text)) if text else 0) | {"prompt_tokens": len(tokens)}


def raw_lowlevel(model: Any, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """The floor under any Python wrapper: llama.cpp's C API called in a bare loop (llama_decode, then
    llama.cpp's greedy sampler), as many tokens as asked, from an empty context."""
    import llama_cpp.llama_cpp as llama_c

    tokens, _ = model.prompt_tokens(messages)
    ctx = model.llama._ctx.ctx
    model.llama.reset()
    llama_c.llama_memory_clear(llama_c.llama_get_memory(ctx), True)
    def decode(batch: Any) -> None:  # the batch only points at `batch`: it must outlive the call
        if llama_c.llama_decode(ctx, llama_c.llama_batch_get_one(batch, len(batch))) != 0:
            raise RuntimeError("llama_decode refused the batch")

    started = time.perf_counter()
    for i in range(0, len(tokens), model.llama.n_batch):
        part = tokens[i:i + model.llama.n_batch]
        decode((llama_c.llama_token * len(part))(*part))
    sampler = llama_c.llama_sampler_init_greedy()
    one = (llama_c.llama_token * 1)(llama_c.llama_sampler_sample(sampler, ctx, -1))
    stamps = [time.perf_counter()]
    for _ in range(max_tokens - 1):
        decode(one)
        one[0] = llama_c.llama_sampler_sample(sampler, ctx, -1)
        stamps.append(time.perf_counter())
    llama_c.llama_sampler_free(sampler)
    llama_c.llama_memory_clear(llama_c.llama_get_memory(ctx), True)
    model.llama.reset()  # llama-cpp's own record of the context no longer matches it
    return _timing(started, stamps, stamps[-1], len(stamps))


def _timing(started: float, stamps: list[float], end: float, tokens: int) -> dict[str, Any]:
    first = (stamps[0] - started) if stamps else float("nan")
    decode = (tokens - 1) / (end - stamps[0]) if stamps and tokens > 1 and end > stamps[0] else float("nan")
    return {"first_token_ms": first * 1000, "tokens_per_s": decode, "tokens": tokens}


def p50(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 1)


def child(mode: str, threads: int, reply: str | None) -> dict[str, Any]:
    """What a fresh process pays, from loading the model to its first token (run in its own process)."""
    from nanofolks.llm.local import load_model, resolve_model_path

    started = time.perf_counter()
    model = load_model(resolve_model_path(MODEL), threads)
    load_ms = (time.perf_counter() - started) * 1000
    messages = room(reply)
    if mode == "warm":  # what onboard leaves: the leader's instructions saved (agent/warmup.py)
        return {"tokens": model.warm(SLOT, messages[:1])}
    result = raw(model, messages, 8) if mode == "raw" else asyncio.run(ours(messages, 32, SLOT))
    return {"first_token_ms": load_ms + result["first_token_ms"], "load_ms": load_ms, "text": result.get("text")}


def spawn(mode: str, home: Path, threads: int, reply: str | None = None) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", mode, "--threads", str(threads)]
    if reply is not None:
        args += ["--reply", reply]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "NANOFOLKS_HOME": str(home)})
    return json.loads(out.stdout.strip().splitlines()[-1])


async def run(runs: int, max_tokens: int, threads: int | None) -> dict[str, Any]:
    from nanofolks.llm.local import load_model, resolve_model_path

    load_before = os.getloadavg()
    path = resolve_model_path(MODEL)
    model = load_model(path, threads)  # measures the thread count here unless given
    threads = model.threads
    cold, cold_empty, cold_onboarded, cold_raw = [], [], [], []
    for _ in range(runs):  # interleaved, so both sides see the same machine load
        with tempfile.TemporaryDirectory() as home:
            first = spawn("ours", Path(home), threads)  # the room's first message: nothing saved yet
            cold_empty.append(first)
            cold.append(spawn("ours", Path(home), threads, first["text"]))  # its second, from the saved state
            cold_raw.append(spawn("raw", Path(home), threads, first["text"]))
        with tempfile.TemporaryDirectory() as home:  # a brand-new home, after onboard's warm-up
            spawn("warm", Path(home), threads)
            cold_onboarded.append(spawn("ours", Path(home), threads))

    await ours(room(None), 4, None)  # warm-up: first-call allocations
    reply = (await ours(room(None), 32, None))["text"]
    coder = [{"role": "system", "content": crew_system("coder")}, {"role": "user", "content": FIRST}]
    warm, warm_raw, prompt, prompt_raw = [], [], [], []
    for i in range(runs):
        slot = f"leader in room {i}"
        model.llama.reset()
        prompt.append(await ours(room(None), 16, None))  # no saved state: every prompt token evaluated
        await ours(room(None), 16, slot)  # the room's first turn, which leaves the leader's state
        await ours(coder, 16, f"coder in room {i}")  # another bot answers in between
        warm.append(await ours(room(reply), 16, slot))
        warm_raw.append(raw(model, room(reply), 16))
        prompt_raw.append(raw(model, room(None), 16))
    story = [{"role": "user", "content": LONG}]
    crew_story = [*room(None)[:1], *story]  # the same question after the crew's ~1000-token instructions
    decode: dict[str, list[dict[str, Any]]] = {}
    for _ in range(runs):
        for context, messages in (("", story), ("_crew_context", crew_story)):
            model.llama.reset()
            for side, rows in (("", await ours(messages, max_tokens, None)), ("raw_", raw(model, messages, max_tokens)),
                               ("raw_lowlevel_", raw_lowlevel(model, messages, max_tokens))):
                decode.setdefault(f"{side}decode_tokens_per_s{context}", []).append(rows)

    crew_tokens = len(model.prompt_tokens(room(None))[0])
    prompt_tps = [crew_tokens / (r["first_token_ms"] / 1000) for r in prompt]
    prompt_raw_tps = [crew_tokens / (r["first_token_ms"] / 1000) for r in prompt_raw]
    result = {
        "bench": "local_model",
        "model_path": str(path),
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "crew_prompt_tokens": crew_tokens,
        "second_turn_prompt_tokens": len(model.prompt_tokens(room(reply))[0]),
        "load_ms_p50": p50(cold, "load_ms"),
        "cold_first_token_ms_p50": p50(cold, "first_token_ms"),
        "cold_empty_first_token_ms_p50": p50(cold_empty, "first_token_ms"),
        "cold_onboarded_first_token_ms_p50": p50(cold_onboarded, "first_token_ms"),
        "raw_cold_first_token_ms_p50": p50(cold_raw, "first_token_ms"),
        "warm_first_token_ms_p50": p50(warm, "first_token_ms"),
        "raw_warm_first_token_ms_p50": p50(warm_raw, "first_token_ms"),
        "prompt_tokens_per_s": round(statistics.median(prompt_tps), 1),
        "raw_prompt_tokens_per_s": round(statistics.median(prompt_raw_tps), 1),
        **{name: p50(rows, "tokens_per_s") for name, rows in decode.items()},
        "decode_tokens_p50": p50(decode["decode_tokens_per_s"], "tokens"),
        "runs": runs,
        "loadavg_1m_before": round(load_before[0], 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    result["warm_vs_raw_ratio"] = round(result["warm_first_token_ms_p50"] / result["raw_warm_first_token_ms_p50"], 3)
    result["cold_vs_raw_ratio"] = round(result["cold_first_token_ms_p50"] / result["raw_cold_first_token_ms_p50"], 3)
    result["decode_vs_raw_ratio"] = round(result["decode_tokens_per_s"] / result["raw_decode_tokens_per_s"], 3)
    result["decode_vs_raw_lowlevel_ratio"] = round(
        result["decode_tokens_per_s"] / result["raw_lowlevel_decode_tokens_per_s"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=None, help="default: measured on this machine")
    parser.add_argument("--child", choices=["ours", "raw", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--reply", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.reply)))
        return
    with tempfile.TemporaryDirectory() as home:  # the measured thread count and saved states: not the user's
        os.environ["NANOFOLKS_HOME"] = home
        report(asyncio.run(run(args.runs, args.max_tokens, args.threads)), args.json)


if __name__ == "__main__":
    main()
