"""A slow model against the turn deadline: the real litellm and the scripted LLM server, whose model takes
--delay seconds (`[[delay:N]]`), per-attempt timeout --timeout with --retries retries.

- slow_answer_s: from the slow message to its answer (the out-of-time message) with `--deadline`;
- next_in_room_s: a message sent to the same room while the slow one runs, to its answer;
- the same two without a deadline that matters (the baseline: what the timeout and retries alone allow),
  and the ratios baseline / with deadline.

    python bench/turn_deadline_bench.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import report  # noqa: E402
from nanofolks.config.loader import load_config, save_config  # noqa: E402
from nanofolks.llm.env import prepare_offline_env  # noqa: E402
from nanofolks.services import Services  # noqa: E402
from tests.conftest import onboard  # noqa: E402
from tests.fakes.llm_server import ScriptedLLM  # noqa: E402


async def slow_then_next(home: Path, deadline: float, args: argparse.Namespace) -> tuple[float, float, bool]:
    """(seconds to the slow message's answer, seconds the next message in the room took, told out of time)."""
    config = load_config(home / "config.json")
    config.orchestrator.turn_deadline = deadline
    config.agents.defaults.timeout = args.timeout
    config.agents.defaults.max_retries = args.retries
    config.memory.enabled = False
    save_config(config, home / "config.json")
    services = Services.open(config, home / "nanofolks.db")
    try:
        await services.llm.ready()
        room = services.rooms.general()
        started = time.perf_counter()
        slow = asyncio.ensure_future(services.pipeline.handle(room, f"[[delay:{args.delay}]] a hard question"))
        await asyncio.sleep(0.2)  # the slow turn holds the room first
        asked = time.perf_counter()
        await services.pipeline.handle(room, "a quick one")
        next_took = time.perf_counter() - asked
        answer = await slow
        slow_took = time.perf_counter() - started  # the quick one waited for it: it has ended by now
        return slow_took, next_took, "ran out of time" in answer.markdown()
    finally:
        services.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=120.0, help="seconds the slow model takes")
    parser.add_argument("--deadline", type=float, default=5.0, help="orchestrator.turnDeadline")
    parser.add_argument("--timeout", type=float, default=5.0, help="agents.defaults.timeout (per attempt)")
    parser.add_argument("--retries", type=int, default=2, help="agents.defaults.maxRetries")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prepare_offline_env()
    results = {}
    with ScriptedLLM() as llm, tempfile.TemporaryDirectory() as tmp:
        for name, deadline in (("deadline", args.deadline), ("baseline", 3600.0)):
            home = Path(tmp) / name
            home.mkdir()
            os.environ["NANOFOLKS_HOME"] = str(home)
            onboard(home, "openai/fake-model", llm.base_url)
            results[name] = await slow_then_next(home, deadline, args)
    (slow, nxt, told), (base_slow, base_next, _) = results["deadline"], results["baseline"]
    report({
        "bench": "turn_deadline", "model_delay_s": args.delay, "deadline_s": args.deadline,
        "timeout_s": args.timeout, "retries": args.retries,
        "slow_answer_s": round(slow, 2), "next_in_room_s": round(nxt, 2), "told_out_of_time": told,
        "baseline_slow_answer_s": round(base_slow, 2), "baseline_next_in_room_s": round(base_next, 2),
        "next_in_room_ratio": round(base_next / nxt, 2),
    }, args.json)


if __name__ == "__main__":
    asyncio.run(main())
