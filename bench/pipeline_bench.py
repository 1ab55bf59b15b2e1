"""Per-message overhead of the five-step pipeline with storage, against bare SQLite inserts.

    python bench/pipeline_bench.py --json [--n 2000]

The model answers instantly (an LLM whose `chat` returns at once), so what is measured is everything
Nanofolks adds around a model call: storing the message, tag, intent, dispatch, building the prompt
(persona, history, token counting), collect, final, storing the reply. The baseline, in the same run,
inserts the same messages into the same kind of database and does nothing else.

Also times `nanofolks --help` against `python -c "import typer"` (wall time of a fresh process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import percentile  # noqa: E402
from nanofolks.config.schema import Config  # noqa: E402
from nanofolks.crew.crew import install_team  # noqa: E402
from nanofolks.llm.client import LLM, ChatResult  # noqa: E402
from nanofolks.orchestrator.pipeline import Pipeline  # noqa: E402
from nanofolks.rooms.rooms import Rooms  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402
from nanofolks.store.messages import Message, MessageRepo  # noqa: E402
from nanofolks.store.rooms import RoomRepo  # noqa: E402
from nanofolks.store.usage import UsageRepo  # noqa: E402

MESSAGES = ["@coder fix the failing test", "Hello crew!", "What is a vector index?", "@all status report",
            "build a landing page for the launch", "@researcher compare sqlite and postgres"]


class InstantLLM(LLM):
    """Answers at once, as if the model took no time; usage is still recorded like a real call."""

    async def chat(self, messages: list[dict[str, Any]], *, model: str, bot: str = "", room_id: int | None = None,
                   **_: Any) -> ChatResult:
        from nanofolks.store.usage import Usage

        result = ChatResult(text=f"@{bot} on it.", model=model, prompt_tokens=10, completion_tokens=3)
        await self._record(Usage(model=model, bot=bot, room_id=room_id, prompt_tokens=10, completion_tokens=3))
        return result


async def run_pipeline(root: Path, n: int) -> tuple[list[float], float, int]:
    config = Config()
    config.agents.defaults.model = "openai/gpt-4o-mini"
    config.orchestrator.llm_intent = False
    crew = install_team(root / "ws", "pirate_crew")
    db = Database(root / "pipeline.db")
    room = Rooms(RoomRepo(db), crew).general()
    llm = InstantLLM(config, UsageRepo(db))
    pipeline = Pipeline(config, crew, llm, MessageRepo(db))
    for text in MESSAGES:  # warm-up: imports, tiktoken, caches
        await pipeline.handle(room, text)
    calls_before = UsageRepo(db).totals()["calls"]
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await pipeline.handle(room, MESSAGES[i % len(MESSAGES)])
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    calls = int(UsageRepo(db).totals()["calls"] - calls_before)
    db.close()
    return latencies, elapsed, calls


async def run_baseline(root: Path, n: int) -> tuple[list[float], float]:
    db = Database(root / "baseline.db")
    crew = install_team(root / "ws2", "pirate_crew")
    room = Rooms(RoomRepo(db), crew).general()
    repo = MessageRepo(db)
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await db.run(repo.add, Message(room.id, "user", "user", MESSAGES[i % len(MESSAGES)]))
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    db.close()
    return latencies, elapsed


def wall(cmd: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pipe, pipe_s, calls = asyncio.run(run_pipeline(root, args.n))
        base, base_s = asyncio.run(run_baseline(root, args.n))
    help_ms = wall([sys.executable, "-m", "nanofolks", "--help"])
    typer_ms = wall([sys.executable, "-c", "import typer"])
    result = {
        "n": args.n,
        "messages_per_s": round(args.n / pipe_s, 1),
        "model_calls": calls,
        "pipeline_p50_ms": round(percentile(pipe, 0.5), 3),
        "pipeline_p99_ms": round(percentile(pipe, 0.99), 3),
        "baseline_insert_p50_ms": round(percentile(base, 0.5), 3),
        "baseline_insert_p99_ms": round(percentile(base, 0.99), 3),
        "baseline_messages_per_s": round(args.n / base_s, 1),
        "overhead_p50_ms": round(percentile(pipe, 0.5) - percentile(base, 0.5), 3),
        "overhead_p99_ms": round(percentile(pipe, 0.99) - percentile(base, 0.99), 3),
        "ratio_p50_vs_baseline": round(percentile(pipe, 0.5) / percentile(base, 0.5), 1),
        "help_ms": round(help_ms, 1),
        "import_typer_ms": round(typer_ms, 1),
        "help_ratio_vs_typer": round(help_ms / typer_ms, 2),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
