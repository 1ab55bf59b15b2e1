"""What a running gateway pays at every turn to see hires and retirements without a restart.

    python bench/crew_bench.py --json [--hires 6] [--rounds 2000]

`Crew.refresh()` compares the crew cards' (path, mtime, size) with those it loaded from, and reloads only when
they differ. Measured on a pirate crew with --hires hired bots (in a temporary workspace):
- refresh_unchanged_us: p50 of a refresh that looks at the cards and finds nothing new;
- refresh_throttled_us: p50 of the pipeline's refresh(max_age=1.0) between two looks (what most turns pay);
- load_crew_us: p50 of loading the whole crew from its cards (what a refresh costs when a card changed);
- ratio_p50: refresh_unchanged / load_crew.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile, report  # noqa: E402
from nanofolks.crew.crew import install_team, load_crew  # noqa: E402
from nanofolks.crew.hiring import draft, write_bot  # noqa: E402


def timed(fn, rounds: int) -> float:  # noqa: ANN001 - any callable
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return percentile(samples, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hires", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        crew = install_team(workspace, "pirate_crew")
        for _ in range(args.hires):
            write_bot(workspace, draft(crew, "researcher", "watches industry trends"))
            crew.refresh()
        refresh = timed(crew.refresh, args.rounds)
        crew.refresh(max_age=0)
        throttled = timed(lambda: crew.refresh(max_age=3600), args.rounds)
        load = timed(lambda: load_crew(workspace), max(1, args.rounds // 10))
    report({"bench": "crew_refresh", "bots": len(crew.bots), "refresh_unchanged_us": round(refresh, 1),
            "refresh_throttled_us": round(throttled, 2),
            "load_crew_us": round(load, 1), "ratio_p50": round(refresh / load, 3)}, args.json)


if __name__ == "__main__":
    main()
