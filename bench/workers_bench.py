"""Gateway workers sharing a PostgreSQL database, beside one gateway on SQLite, in the same run.

    python bench/workers_bench.py --json [--postgres URL] [--messages 60] [--burst 150] [--rooms 8]

The method and helpers are bench/gateway_bench.py's: the loopback Bot API server, the scripted LLM server
answering at once (an instant model), `nanofolks gateway` subprocesses.

- For SQLite (one gateway) and for 1, 2 and 3 PostgreSQL workers (each run in a fresh schema):
  p50/p99 latency of --messages messages sent one at a time (update queued -> reply accepted), the model
  calls' own p50 (the usage table), added_p50_ms = p50 - model p50 (what the gateway adds), and
  updates_per_s for a burst of --burst messages over --rooms chats, each its own room.
- pg1_vs_sqlite_added_p50: one PostgreSQL worker's added p50 / SQLite's (the goal: <= 1.5).
- pg1_durable, pg3_durable: the same with `synchronous_commit=on` in the storage URL's options, so that
  every commit waits for the disk's flush (the store's default does not, as SQLite's WAL with
  synchronous=NORMAL does not): how much a flush per write transaction would cost.
- takeover: three workers, --rooms messages whose model call takes 3 s are in flight on all of them when
  the worker polling the bot is killed with kill -9. polling_s: kill -> the first getUpdates of the worker
  that took the bot token's lock over; turns_s: kill -> the last of the killed worker's messages answered
  by a survivor (its turn run again there: each is answered once). The goal: under 10 s.
- stages_p50_ms, for the sequential messages, from the store's own timestamps: `queue` from the inbox
  row's commit to its claim by a worker (PostgreSQL only; on SQLite the turn starts from the process's
  own queue), `turn` to the commit of its replies (the model call included), `send` to the reply's
  delivery recorded.
- cpu_s: CPU seconds the workers used during the burst (user + system, summed), from /proc: on a machine
  with 2 cores, where the time goes when workers are added.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gateway_bench import (  # noqa: E402
    burst,
    prepare_home,
    sequential,
    sequential_model_ms,
    start_gateway,
    wait_ready,
)
from bench.stats import percentile, report  # noqa: E402
from nanofolks.llm.env import prepare_offline_env  # noqa: E402
from tests.fakes.llm_server import Rule, ScriptedLLM  # noqa: E402
from tests.fakes.telegram_server import FakeTelegram  # noqa: E402

SLOW = 3.0  # seconds the takeover's model calls take on their first try


@contextlib.contextmanager
def fresh_schema(server: str, settings: str = "") -> Iterator[str]:
    """A URL whose connections use a new schema of `server`'s database (and `settings`, "name=value"
    separated by spaces); dropped afterwards."""
    import psycopg

    schema = f"nf_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    options = " ".join(f"-c{s}" for s in (f"search_path={schema}", *settings.split()))
    try:
        yield f"{server}{'&' if '?' in server else '?'}options={quote(options)}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds each process has used so far, summed."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wait_until(check, what: str, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_workers(home: Path, n: int) -> list[subprocess.Popen]:
    """n gateways, each from a home of its own (a copy: each machine has its config and crew)."""
    homes = [home, *(shutil.copytree(home, home.with_name(f"{home.name}-{i}")) for i in range(1, n))]
    return [start_gateway(h) for h in homes]


def live_workers(n: int) -> None:
    """Wait until n workers have joined the fleet."""
    from nanofolks.services import Services
    from nanofolks.store.fleet import live_workers as fleet

    services = Services.open()
    try:
        wait_until(lambda: len(fleet(services.db)) >= n, f"{n} live workers")
    finally:
        services.close()


def run(messages: int, burst_n: int, chats: list[int], memory: bool, workers: int = 0,
        server: str = "", settings: str = "") -> dict:
    """One gateway on SQLite (workers=0), or `workers` gateways on a fresh PostgreSQL schema."""
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as tg, ScriptedLLM() as llm, \
            (fresh_schema(server, settings) if workers else contextlib.nullcontext("")) as url:
        home = Path(tmp) / "home"
        prepare_home(home, tg, llm, chats, memory, url)
        procs = start_workers(home, max(1, workers))
        try:
            for proc in procs:
                wait_ready(tg, proc)
            if workers:
                live_workers(workers)
            time.sleep(1.0)
            lat = sequential(tg, chats[0], messages)
            model_ms = sequential_model_ms(messages)
            stages = stage_times(chats[0], messages)
            cpu_before = cpu_seconds([p.pid for p in procs])
            rate = burst(tg, chats, burst_n)
            cpu = cpu_seconds([p.pid for p in procs]) - cpu_before
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    p50, model = statistics.median(lat), statistics.median(model_ms)
    return {"p50_ms": p50, "p99_ms": percentile(lat, 0.99), "model_ms_p50": model, "added_p50_ms": p50 - model,
            "updates_per_s": rate, "cpu_s": cpu, "stages_p50_ms": stages}


def stage_times(chat: int, messages: int) -> dict[str, float]:
    """Median milliseconds of each stage of the chat's last `messages` messages (see the docstring)."""
    from nanofolks.gateway.fleet import LEASE_TTL
    from nanofolks.services import Services

    services = Services.open()
    try:
        rows = services.db.query(
            "SELECT i.received_at, i.lease_until, i.done_at, MAX(o.updated_at) FROM inbox i JOIN outbox o"
            " ON o.inbox_id = i.id WHERE i.chat_id = ? GROUP BY i.id ORDER BY i.id DESC LIMIT ?",
            (str(chat), messages))
    finally:
        services.close()
    stages: dict[str, list[float]] = {"queue": [], "turn": [], "send": []}
    for received, lease, done, delivered in rows:
        claimed = lease - LEASE_TTL if lease is not None else received
        if lease is not None:
            stages["queue"].append(claimed - received)
        stages["turn"].append(done - claimed)
        stages["send"].append(delivered - done)
    return {name: round(statistics.median(times) * 1000, 2) for name, times in stages.items() if times}


def takeover(chats: list[int], server: str) -> dict:
    """Kill -9 the poller of three workers while every worker has turns in flight; time the survivors."""
    import psycopg

    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as tg, ScriptedLLM() as llm, \
            fresh_schema(server) as url:
        home = Path(tmp) / "home"
        prepare_home(home, tg, llm, chats, False, url)
        llm.add(Rule(contains="slow", reply="[@{handle}] {user}", delay=SLOW, times=len(chats)))
        procs = start_workers(home, 3)
        by_pid = {p.pid: p for p in procs}
        try:
            for proc in procs:
                wait_ready(tg, proc)
            live_workers(3)
            for chat in chats:
                tg.push_message(chat, f"slow {chat}", user_id=chat)
            wait_until(lambda: sum("slow" in str(r) for r in llm.requests) >= len(chats), "every turn in flight")
            with psycopg.connect(url) as conn:
                holds = conn.execute("SELECT pid, holds FROM workers").fetchall()
                poller = next(pid for pid, held in holds if "telegram-" in held)
                lost = {r[0] for r in conn.execute(
                    "SELECT i.chat_id FROM inbox i JOIN workers w ON w.id = i.claimed_by WHERE w.pid = %s",
                    (poller,)).fetchall()}
            polls = tg.count("getUpdates")
            by_pid[poller].send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            by_pid[poller].wait(10)
            wait_until(lambda: tg.count("getUpdates") > polls, "a new poller")
            polling = time.perf_counter() - killed
            wait_until(lambda: {str(m["chat_id"]) for m in tg.sent if "slow" in m["plain"]} >= lost,
                       "the killed worker's turns answered")
            turns = time.perf_counter() - killed
            wait_until(lambda: {m["chat_id"] for m in tg.sent if "slow" in m["plain"]} >= set(chats), "every answer")
            answers = [m["chat_id"] for m in tg.sent if "slow" in m["plain"]]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                proc.wait(30)
    return {"polling_s": polling, "turns_s": turns, "killed_turns": len(lost),
            "answered_once": sorted(answers) == sorted(chats)}


def rounded(result: dict) -> dict:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--postgres", default=os.environ.get("NANOFOLKS_TEST_POSTGRES", ""),
                        help="a PostgreSQL server's URL (default: $NANOFOLKS_TEST_POSTGRES)")
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--burst", type=int, default=150)
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--memory", choices=["on", "off"], default="off")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("no PostgreSQL server: pass --postgres URL or set NANOFOLKS_TEST_POSTGRES")
    prepare_offline_env()
    chats = [1000 + i for i in range(args.rooms)]
    memory = args.memory == "on"
    sqlite = run(args.messages, args.burst, chats, memory)
    pg = {f"pg{n}": run(args.messages, args.burst, chats, memory, n, args.postgres) for n in (1, 2, 3)}
    pg |= {f"pg{n}_durable": run(args.messages, args.burst, chats, memory, n, args.postgres, "synchronous_commit=on")
           for n in (1, 3)}
    result = {
        "bench": "workers", "messages": args.messages, "burst": args.burst, "rooms": args.rooms,
        "memory": args.memory, "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1),
        "sqlite": rounded(sqlite),
        **{name: rounded(r) for name, r in pg.items()},
        "pg1_vs_sqlite_added_p50": round(pg["pg1"]["added_p50_ms"] / sqlite["added_p50_ms"], 2),
        "pg1_durable_vs_sqlite_added_p50": round(pg["pg1_durable"]["added_p50_ms"] / sqlite["added_p50_ms"], 2),
        "throughput_vs_sqlite": {name: round(r["updates_per_s"] / sqlite["updates_per_s"], 2) for name, r in pg.items()},
        "takeover": rounded(takeover(chats, args.postgres)),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
