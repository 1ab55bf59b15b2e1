"""`nanofolks metrics` from another process while `nanofolks gateway` works (Telegram fake, scripted LLM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.config.loader import load_config, save_config
from nanofolks.config.schema import TierConfig
from nanofolks.store.db import Database
from tests.conftest import ROOT, run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway
from tests.integration.test_gateway_telegram import ALICE, configure


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def gateway(crew_home: Path, tg: FakeTelegram) -> Iterator[Gateway]:
    configure(crew_home, tg)
    config = load_config(crew_home / "config.json")
    config.routing.enabled = True
    config.routing.llm_classifier.enabled = False
    config.routing.tiers = {"simple": TierConfig(model="openai/gpt-4o-mini"),  # type: ignore[misc]
                            "reasoning": TierConfig(model="openai/tier-reasoning")}
    save_config(config, crew_home / "config.json")
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def watch_lines(home: Path, count: int) -> list[dict]:
    """`metrics --watch --json` prints a line per refresh until Ctrl-C, which ends it cleanly."""
    env = {**os.environ, "NANOFOLKS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nanofolks", "metrics", "--watch", "--json", "--every", "0.2"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(count)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        return lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_metrics_while_the_gateway_runs(gateway: Gateway, tg: FakeTelegram, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(contains="irrational", status=400, reply="bad request", times=1))
    gateway.start()
    tg.push_message(ALICE, "hello crew", user_id=ALICE)
    tg.wait_for_sent(1, 90)
    tg.push_message(ALICE, "Prove that the square root of 2 is irrational.", user_id=ALICE)
    tg.wait_for_sent(2, 90)  # the model refused once: the user is told
    db = Database(gateway.home / "nanofolks.db")
    with db.write() as conn:  # a reply stuck in the queue, as a platform outage would leave it
        conn.execute("INSERT INTO outbox (key, platform, account, chat_id, text, created_at, updated_at)"
                     " VALUES ('k1', 'telegram', 'x', '1', 'waiting', ?, ?)", (time.time(), time.time()))
    db.close()

    result = run_cli("metrics", "--json", home=gateway.home, timeout=180)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["queues"]["telegram"] == {"inbox": 0, "outbox": 1}
    assert data["reply_latency_s"]["turns"] == 2 and 0 < data["reply_latency_s"]["p50"] <= data["reply_latency_s"]["p95"]
    assert data["turns_per_minute"] == pytest.approx(2 / 5)
    assert data["today_by_tier"]["simple"]["calls"] == 1 and data["today_by_tier"]["simple"]["cost_usd"] > 0
    assert data["today_by_tier"]["reasoning"]["calls"] == 1
    assert data["errors_today"] == {"BadRequestError": 1}
    assert [r["model"] for r in llm_server.requests] == ["gpt-4o-mini", "tier-reasoning"]

    assert watch_lines(gateway.home, 2)[-1]["reply_latency_s"]["turns"] == 2
    text = run_cli("metrics", home=gateway.home, timeout=180)
    assert "turns/min 0.4" in text.stdout and "BadRequestError 1" in text.stdout
    assert gateway.stop() == 0
