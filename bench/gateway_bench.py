"""The whole gateway against the loopback Bot API server, beside python-telegram-bot's own echo bot.

    python bench/gateway_bench.py --json [--messages 100] [--burst 200] [--rooms 8]

Both bots run as subprocesses polling the same in-process fake Bot API server (tests/fakes/telegram_server.py);
the gateway's model is the scripted LLM server (tests/fakes/llm_server.py) answering instantly, reached
through litellm over HTTP as in production.

- latency: one message at a time, from the moment the update is queued on the server to the moment the
  server accepted the reply (sendMessage); p50 and p99 over --messages messages, for the gateway and for
  the echo bot (PTB Application + MessageHandler echoing the text: the floor). ratio_p50 = gateway / echo.
- model_ms_p50: time the gateway's model calls took (its usage table, litellm included), part of the
  gateway's latency; added_p50_ms = gateway p50 - model p50 is the latency the gateway itself adds (one
  model call per "ping"), and overhead_ratio_p50 = added_p50_ms / echo p50. model_http_floor_ms is a
  bare keep-alive HTTP round trip to the same scripted server from this process: what the model call
  would cost with no client library at all.
- --memory off runs the same with `memory.enabled` false, to show what memory priming costs.
- updates_per_s: --burst messages queued at once over --rooms chats, each chat mapped to its own room (one
  turn at a time per room is by design), until every reply was delivered; for both bots.
- rss_idle_mb: resident memory of the started, idle gateway (before any message) and after the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile, report  # noqa: E402
from nanofolks.llm.env import prepare_offline_env  # noqa: E402
from tests.conftest import onboard  # noqa: E402
from tests.fakes.llm_server import ScriptedLLM  # noqa: E402
from tests.fakes.telegram_server import FakeTelegram  # noqa: E402

ECHO_BOT = """
import sys
from telegram.ext import Application, MessageHandler, filters

async def echo(update, context):
    await update.message.reply_text(update.message.text, do_quote=False)

app = Application.builder().token(sys.argv[1]).base_url(sys.argv[2] + "/bot").build()
app.add_handler(MessageHandler(filters.TEXT, echo))
print("READY", flush=True)
app.run_polling(poll_interval=0, timeout=5)
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(tg: FakeTelegram, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Ready once the bot is long-polling (a getUpdates after its getMe)."""
    deadline = time.monotonic() + timeout
    while tg.count("getUpdates") < 1:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bot did not start (exit {proc.poll()})")
        time.sleep(0.05)


def sequential(tg: FakeTelegram, chat: int, n: int, warmup: int = 3) -> list[float]:
    """Milliseconds from queueing each message to its reply being accepted, one at a time."""
    out = []
    for i in range(n + warmup):
        before = len(tg.sent)
        started = time.perf_counter()
        tg.push_message(chat, f"ping {i}", user_id=chat)
        tg.wait_for(lambda b=before: len(tg.sent) > b, 60, "a reply")
        if i >= warmup:
            out.append((time.perf_counter() - started) * 1000)
    return out


def burst(tg: FakeTelegram, chats: list[int], n: int) -> float:
    """Updates per second: n messages queued at once over the chats, until all n replies arrived."""
    before = len(tg.sent)
    started = time.perf_counter()
    for i in range(n):
        chat = chats[i % len(chats)]
        tg.push_message(chat, f"burst {i}", user_id=chat)
    tg.wait_for(lambda: len(tg.sent) >= before + n, 300, f"{n} replies")
    return n / (time.perf_counter() - started)


def run_echo(messages: int, burst_n: int, chats: list[int]) -> dict:
    with FakeTelegram() as tg:
        proc = subprocess.Popen([sys.executable, "-c", ECHO_BOT, tg.token, tg.api_base],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(tg, proc)
            lat = sequential(tg, chats[0], messages)
            rate = burst(tg, chats, burst_n)
        finally:
            proc.terminate()
            proc.wait(20)
    return {"p50_ms": statistics.median(lat), "p99_ms": percentile(lat, 0.99), "updates_per_s": rate}


def sequential_model_ms(messages: int) -> list[float]:
    """How long the model calls of the sequential messages took (the last `messages` calls so far), read
    from the store the home in NANOFOLKS_HOME names."""
    from nanofolks.services import Services

    services = Services.open()
    try:
        rows = services.db.query("SELECT latency_ms FROM usage WHERE ok = 1 ORDER BY id DESC LIMIT ?", (messages,))
    finally:
        services.close()
    return [r[0] for r in rows]


def model_http_floor(base_url: str, calls: int = 50) -> float:
    """p50 milliseconds of a bare chat completion request to the scripted server (keep-alive client)."""
    import httpx

    body = {"model": "fake-model", "messages": [{"role": "user", "content": "ping"}]}
    times = []
    with httpx.Client(timeout=10) as client:
        for i in range(calls + 5):
            started = time.perf_counter()
            client.post(f"{base_url}/chat/completions", json=body).raise_for_status()
            if i >= 5:
                times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def prepare_home(home: Path, tg: FakeTelegram, llm: ScriptedLLM, chats: list[int], memory: bool,
                 storage_url: str = "") -> None:
    """An onboarded home polling `tg`, each chat but the first mapped to a room of its own, and
    NANOFOLKS_HOME set to it (for this process and the gateways it starts)."""
    os.environ["NANOFOLKS_HOME"] = str(home)
    onboard(home, "openai/fake-model", llm.base_url)
    config = json.loads((home / "config.json").read_text())
    config["channels"] = {"telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                       "allowFrom": ["*"], "pollTimeout": 5}}
    config["orchestrator"]["maxConcurrentTurns"] = len(chats)
    config["memory"] = {"enabled": memory}
    if storage_url:
        config["storage"] = {"url": storage_url}
    (home / "config.json").write_text(json.dumps(config))
    from nanofolks.services import Services

    services = Services.open()
    for i, chat in enumerate(chats[1:]):
        services.rooms.create(f"bench{i}", "open")
        services.rooms.map_chat(f"bench{i}", f"telegram:{chat}")
    services.close()


def start_gateway(home: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NANOFOLKS_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "nanofolks", "gateway"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_gateway(messages: int, burst_n: int, chats: list[int], memory: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as tg, ScriptedLLM() as llm:
        floor = model_http_floor(llm.base_url)
        home = Path(tmp) / "home"
        prepare_home(home, tg, llm, chats, memory)
        proc = start_gateway(home)
        try:
            wait_ready(tg, proc)
            time.sleep(1.0)
            rss_idle = rss_mb(proc.pid)
            lat = sequential(tg, chats[0], messages)
            model_ms = sequential_model_ms(messages)
            rate = burst(tg, chats, burst_n)
            rss_after = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"p50_ms": statistics.median(lat), "p99_ms": percentile(lat, 0.99), "updates_per_s": rate,
            "model_ms_p50": statistics.median(model_ms), "model_http_floor_ms": floor,
            "rss_idle_mb": rss_idle, "rss_after_mb": rss_after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--memory", choices=["on", "off"], default="on")
    args = parser.parse_args()
    prepare_offline_env()
    chats = [1000 + i for i in range(args.rooms)]
    echo = run_echo(args.messages, args.burst, chats)
    gateway = run_gateway(args.messages, args.burst, chats, args.memory == "on")
    added = gateway["p50_ms"] - gateway["model_ms_p50"]
    result = {
        "bench": "gateway",
        "messages": args.messages, "burst": args.burst, "rooms": args.rooms, "memory": args.memory,
        "gateway": {k: round(v, 2) for k, v in gateway.items()},
        "echo_bot": {k: round(v, 2) for k, v in echo.items()},
        "ratio_p50": round(gateway["p50_ms"] / echo["p50_ms"], 2),
        "ratio_p99": round(gateway["p99_ms"] / echo["p99_ms"], 2),
        "added_p50_ms": round(added, 2),
        "overhead_ratio_p50": round(added / echo["p50_ms"], 2),
        "throughput_ratio": round(gateway["updates_per_s"] / echo["updates_per_s"], 3),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
