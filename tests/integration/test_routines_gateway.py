"""Routines and heartbeats in `nanofolks gateway` run as a user runs it (a subprocess), with the real
python-telegram-bot against the loopback Bot API server and the real litellm against the scripted LLM
server. A routine every minute reaches the chat mapped to its room once per run, also across kill -9;
heartbeats with nothing to do call no model; a due task costs one call."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM, last_user_message
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

ALICE = 111


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def configure(home: Path, tg: FakeTelegram, **extra: object) -> None:
    path = home / "config.json"
    config = json.loads(path.read_text())
    config["channels"] = {"telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                       "allowFrom": [str(ALICE)], "pollTimeout": 5}}
    config["memory"] = {"enabled": False}  # not what these tests are about; lighter on a loaded machine
    config.update(extra)
    path.write_text(json.dumps(config))


@pytest.fixture
def gateway(crew_home: Path, tg: FakeTelegram) -> Iterator[Gateway]:
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def cli(home: Path, *args: str) -> str:
    done = run_cli(*args, home=home)
    assert done.returncode == 0, done.stderr
    return done.stdout


def runs(home: Path, routine_id: int = 1) -> list[dict]:
    return json.loads(cli(home, "routines", "history", str(routine_id), "--json"))


def outbox(home: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "nanofolks.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM outbox WHERE key LIKE 'routine-run:%' ORDER BY id").fetchall()


def wait(predicate, timeout: float, what: str, gateway: Gateway) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{gateway.output()}"
        time.sleep(0.2)


def greet(tg: FakeTelegram) -> None:
    """Alice writes first, as a real user would have (a chat Telegram never saw cannot be sent to); a
    command, so that no model and no room is involved."""
    tg.push_message(ALICE, "/help", user_id=ALICE)
    tg.wait_for(lambda: any("Talk to the crew" in m["text"] for m in tg.sent), 60, "the help text")


def routine_texts(tg: FakeTelegram) -> list[str]:
    return [m["text"] for m in tg.sent if "Talk to the crew" not in m["text"]]


def routine_calls(llm_server: ScriptedLLM) -> list[dict]:
    return [r for r in llm_server.requests if last_user_message(r["messages"]) == "@leader status check please"]


def add_minutely_routine(home: Path) -> None:
    cli(home, "room", "create", "ops")
    cli(home, "room", "map", "ops", f"telegram:{ALICE}")
    out = cli(home, "routines", "add", "--name", "status", "--message", "status check please", "--schedule",
              "* * * * *", "--room", "ops", "--bot", "leader")
    assert "routine 1 'status' in #ops" in out


def test_a_routine_every_minute_reaches_the_mapped_chat_once_per_run(gateway: Gateway, tg: FakeTelegram,
                                                                     llm_server: ScriptedLLM) -> None:
    configure(gateway.home, tg)
    add_minutely_routine(gateway.home)
    llm_server.add(Rule(contains="status check please", reply="all hands accounted for"))
    gateway.start()
    greet(tg)
    wait(lambda: sum(r["status"] == "delivered" for r in runs(gateway.home)) >= 2, 150, "two delivered runs", gateway)
    tg.wait_for(lambda: len(routine_texts(tg)) >= 2, 30, "two routine messages")
    gateway.stop()
    delivered = [r for r in runs(gateway.home) if r["status"] == "delivered"]
    assert all(r["delivered_to"] == [f"telegram:{ALICE}"] and r["trigger"] == "schedule" for r in delivered)
    assert routine_texts(tg) == ["all hands accounted for"] * len(delivered)  # once per run
    assert all(m["chat_id"] == ALICE for m in tg.sent)
    dues = [dt.datetime.fromisoformat(r["due"]) for r in delivered]
    assert all(d.second == 0 for d in dues) and len(set(dues)) == len(dues)  # one run per minute slot
    # a run the stop caught in flight stays `running` (run again at the next start): asked, not delivered
    assert len(delivered) <= len(routine_calls(llm_server)) <= len(runs(gateway.home))
    work = json.loads(cli(gateway.home, "worklog", "list", "--room", "ops", "--json"))
    assert [w["kind"] for w in work] == ["routine"] * len(delivered)


def test_kill9_between_the_answer_and_its_delivery_still_delivers_once(gateway: Gateway, tg: FakeTelegram,
                                                                        llm_server: ScriptedLLM) -> None:
    configure(gateway.home, tg)
    add_minutely_routine(gateway.home)
    llm_server.add(Rule(contains="status check please", reply="the answer that was cut off", delay=60, times=1),
                   Rule(contains="status check please", reply="the answer after the crash", times=1),
                   Rule(contains="status check please", reply="a later run"))
    gateway.start()
    greet(tg)
    # 1. killed while the model is thinking: the run stored no answer, the restart runs it again
    wait(lambda: routine_calls(llm_server), 90, "the routine's model call", gateway)
    gateway.stop(signal.SIGKILL)
    assert [r["status"] for r in runs(gateway.home)] == ["running"]
    # 2. the re-run's answer is stored and queued, but its send is throttled: killed before delivery
    tg.fail_next("sendMessage", status=429, description="Too Many Requests: retry after 4", retry_after=4)
    gateway.start()
    wait(lambda: any(r["attempts"] == 1 and r["status"] == "pending" for r in outbox(gateway.home)), 60,
         "a throttled send", gateway)
    assert "resuming run 1 (running)" in gateway.output()
    gateway.stop(signal.SIGKILL)
    assert routine_texts(tg) == []
    first = runs(gateway.home)[-1]
    assert (first["status"], first["answer"]) == ("delivered", "the answer after the crash")
    # 3. the next start sends what was queued: exactly once, and the model is not asked again
    gateway.start()
    tg.wait_for(lambda: any(m["text"] == "the answer after the crash" for m in tg.sent), 60, "the delivery")
    time.sleep(1)
    gateway.stop(timeout=120)  # at exit it waits for the start's litellm import (its warm-up thread)
    assert routine_texts(tg).count("the answer after the crash") == 1
    assert "the answer that was cut off" not in json.dumps(tg.sent)
    later = routine_texts(tg).count("a later run")
    assert len(routine_calls(llm_server)) == 2 + later  # the killed call and its re-run; later slots once each


def test_heartbeats_cost_nothing_when_idle_and_one_cheap_call_for_a_due_task(gateway: Gateway, tg: FakeTelegram,
                                                                            llm_server: ScriptedLLM) -> None:
    beat = {"enabled": True, "every": "1s"}
    bots = {h: {"heartbeat": beat} for h in ("leader", "researcher", "creative", "social", "auditor")}
    bots["coder"] = {"model": "openai/cheap-model", "heartbeat": beat}
    configure(gateway.home, tg, agents={**json.loads((gateway.home / "config.json").read_text())["agents"],
                                        "bots": bots})
    cli(gateway.home, "room", "map", "general", f"telegram:{ALICE}")
    gateway.start()
    greet(tg)
    count = gateway.output().count("heartbeat @coder: nothing new")
    wait(lambda: gateway.output().count("heartbeat @coder: nothing new") >= count + 4, 60, "four idle beats", gateway)
    assert gateway.output().count("heartbeat @leader: nothing new") >= 3
    assert llm_server.requests == []  # several intervals of six bots: not one model call

    llm_server.add(Rule(handle="coder", contains="Heartbeat", reply="Ahoy, the hull patch is due today!"))
    today = dt.date.today().isoformat()
    cli(gateway.home, "room", "task", "add", "patch the hull", "--room", "general", "--owner", "coder", "--due", today)
    wait(lambda: len(tg.sent) == 2, 60, "the heartbeat's message", gateway)
    count = gateway.output().count("heartbeat @coder: nothing new")
    wait(lambda: gateway.output().count("heartbeat @coder: nothing new") >= count + 3, 60, "three more beats", gateway)
    gateway.stop()
    [call] = llm_server.requests  # one call, and no more once it was acted on
    assert call["model"] == "cheap-model" and "patch the hull" in json.dumps(call["messages"])
    assert routine_texts(tg) == ["Ahoy, the hull patch is due today!"]
    with sqlite3.connect(gateway.home / "nanofolks.db") as conn:
        assert conn.execute("SELECT bot, model FROM usage").fetchall() == [("coder", "openai/cheap-model")]
