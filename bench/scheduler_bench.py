"""The scheduler's CPU while nothing is due, against an idle event loop, in the same run.

    python bench/scheduler_bench.py --json [--routines 500] [--seconds 30]

Three windows of the same length, each in this process with the same database open:

    baseline    the event loop with nothing to do (asyncio.sleep)
    scheduler   the gateway's Scheduler with `--routines` routines (none due in the window) and every bot
                of the crew with heartbeats on, every hour: it sleeps until the next due time, reading
                the routines table again every RESCAN seconds
    polling     what a poller checking the same routines every second would cost (a reference)

CPU is the process's user + system time (every thread). The scheduler's first pass (reading and
scheduling every routine) is reported apart, since it happens once at start and after each rescan."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import report  # noqa: E402
from nanofolks.config.schema import BotSettings, Config, HeartbeatConfig  # noqa: E402
from nanofolks.crew.crew import install_team  # noqa: E402
from nanofolks.routines.scheduler import RESCAN, Scheduler  # noqa: E402
from nanofolks.routines.service import RoutineService  # noqa: E402
from nanofolks.services import Services  # noqa: E402


def cpu() -> float:
    return time.process_time()


async def idle(seconds: float) -> float:
    start = cpu()
    await asyncio.sleep(seconds)
    return cpu() - start


async def scheduled(services: Services, seconds: float) -> tuple[float, float, int]:
    """(cpu of the first pass, cpu of the rest of the window, passes made)."""
    scheduler = Scheduler(services, dict)
    start = cpu()
    await scheduler._pass(time.time())
    first = cpu() - start
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.5)  # its own first pass
    start = cpu()
    await asyncio.sleep(seconds)
    spent = cpu() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return first, spent, scheduler.passes


async def polling(services: Services, seconds: float) -> float:
    """Every second: read the routines and see whether one is due (what sleeping until due avoids)."""
    routines = RoutineService.of(services)
    start = cpu()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.time()
        for routine in await services.db.run(routines.repo.list, None, True):
            routines.schedule_of(routine).newest_at_or_before(now)
        await asyncio.sleep(1.0)
    return cpu() - start


def build(root: Path, count: int) -> Services:
    config = Config()
    config.workspace = str(root / "ws")
    config.memory.enabled = False
    install_team(root / "ws", "pirate_crew")
    services = Services.open(config, root / "bench.db")
    for handle in services.crew.handles:
        config.agents.bots[handle] = BotSettings(heartbeat=HeartbeatConfig(enabled=True, every="1h"))
    routines = RoutineService.of(services)
    schedules = ["0 3 1 1 *", "every 7d", "30 4 29 2 *"]  # none comes due in the window
    for i in range(count):
        routines.add(f"routine {i}", "status report", schedules[i % len(schedules)])
    return services


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routines", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=2 * RESCAN)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        services = build(Path(tmp), args.routines)
        baseline = asyncio.run(idle(args.seconds))
        first, spent, passes = asyncio.run(scheduled(services, args.seconds))
        polled = asyncio.run(polling(services, args.seconds))
        services.close()
    ms = 1000.0
    report({
        "routines": args.routines,
        "window_s": args.seconds,
        "rescan_s": RESCAN,
        "baseline_idle_cpu_ms": round(baseline * ms, 2),
        "scheduler_idle_cpu_ms": round(spent * ms, 2),
        "scheduler_passes_in_window": passes - 1,
        "scheduler_cpu_per_s_ms": round(spent * ms / args.seconds, 3),
        "scheduler_minus_baseline_ms": round((spent - baseline) * ms, 2),
        "scheduler_first_pass_ms": round(first * ms, 2),
        "polling_1s_cpu_ms": round(polled * ms, 2),
        "polling_vs_scheduler": round(polled / spent, 1) if spent > 0 else None,
    }, args.json)


if __name__ == "__main__":
    main()
