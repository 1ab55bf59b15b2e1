"""Three `nanofolks gateway` workers on one PostgreSQL database, as three machines would run them: the real
python-telegram-bot against the loopback Bot API server, litellm against the scripted LLM server. A burst
over many chats is answered exactly once, in order per chat, while the worker polling the bot is killed
with kill -9 and the one that took its place is stopped with SIGTERM."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

CHATS = [5000 + i for i in range(12)]
PER_CHAT = 5
BURST = re.compile(r"burst (\d+) #(\d+)")


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def workers(pg_url: str, crew_home: Path, tg: FakeTelegram, tmp_path: Path) -> Iterator[list[Gateway]]:
    """Three homes with the same config (each machine has its own), one database."""
    config = json.loads((crew_home / "config.json").read_text())
    config["channels"] = {"telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                       "allowFrom": ["*"], "pollTimeout": 2}}
    config["storage"] = {"url": pg_url}
    config["memory"] = {"enabled": False}
    (crew_home / "config.json").write_text(json.dumps(config))
    homes = [crew_home, *(shutil.copytree(crew_home, tmp_path / f"machine{i}") for i in (2, 3))]
    gateways = [Gateway(home) for home in homes]
    yield gateways
    for gateway in gateways:
        gateway.close()


def status(home: Path) -> dict:
    result = run_cli("status", "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_until(check: Callable[[], object], what: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def poller(home: Path) -> int | None:
    """The pid of the worker polling the bot, once `status` shows it running."""
    telegram = next(ch for ch in status(home)["channels"] if ch["channel"] == "telegram")
    return telegram["pid"] if telegram["state"] == "running" else None


def answered(tg: FakeTelegram) -> dict[int, list[int]]:
    """chat -> the burst numbers its replies answered, in the order they arrived."""
    seen: dict[int, list[int]] = defaultdict(list)
    for sent in tg.sent:
        found = BURST.search(sent["plain"])
        if found:
            seen[sent["chat_id"]].append(int(found.group(2)))
    return seen


def test_a_burst_survives_kill9_and_sigterm_with_one_answer_each_in_order(
        workers: list[Gateway], tg: FakeTelegram, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(contains="burst", reply="[@{handle}] {user}", delay=0.2))  # turns stay in flight a while
    for worker in workers:
        worker.start()
    home = workers[0].home
    assert len(wait_until(lambda: len(status(home).get("workers", [])) == 3 and status(home)["workers"],
                          "three live workers")) == 3
    first = wait_until(lambda: poller(home), "a worker polling the bot")
    by_pid = {w.proc.pid: w for w in workers if w.proc}
    assert first in by_pid and tg.count("getUpdates") >= 1
    shown = run_cli("status", home=home).stdout
    assert "gateway  running (3 workers)" in shown
    assert re.search(rf":{first}, up \d+[smh], seen \d+s ago; holds [a-z, ]*telegram", shown), shown

    for n in range(PER_CHAT):
        for chat in CHATS:
            tg.push_message(chat, f"burst {chat} #{n}", user_id=chat)
    wait_until(lambda: sum(map(len, answered(tg).values())) >= 12, "the first answers")

    by_pid[first].stop(signal.SIGKILL)  # the poller dies mid-burst, its turns and polling with it
    second = wait_until(lambda: (pid := poller(home)) not in (None, first) and pid, "the polling to move", 60)
    assert second in by_pid
    assert by_pid[second].stop(signal.SIGTERM) == 0  # the new poller stops cleanly mid-burst
    third = wait_until(lambda: (pid := poller(home)) not in (None, first, second) and pid, "the polling to move again")
    survivor = by_pid[third]

    total = len(CHATS) * PER_CHAT
    wait_until(lambda: sum(map(len, answered(tg).values())) >= total - len(outbox_uncertain(home)),
               f"{total} answers", 240)
    seen, uncertain = answered(tg), outbox_uncertain(home)
    for chat in CHATS:
        missing = set(range(PER_CHAT)) - set(seen[chat])
        assert missing <= uncertain.get(chat, set()), f"chat {chat}: {missing} unanswered"
        assert seen[chat] == sorted(set(seen[chat])), f"chat {chat}: out of order or twice: {seen[chat]}"
    assert sum(map(len, uncertain.values())) <= 1  # only a send in flight at the kill can be uncertain (it is never resent)

    final = status(home)
    assert [w["pid"] for w in final["workers"]] == [third]
    assert {"telegram", "scheduler"} <= {h["lock"].split("-")[0] for h in final["workers"][0]["holds"]}
    telegram = next(ch for ch in final["channels"] if ch["channel"] == "telegram")
    assert telegram["inbox"]["pending"] == 0 and telegram["outbox"]["pending"] == telegram["outbox"]["sending"] == 0
    listed = json.loads(run_cli("channels", "list", "--json", home=home).stdout)
    assert next(ch for ch in listed if ch["channel"] == "telegram")["pid"] == third
    assert "took over telegram-" in survivor.output()

    end_sessions(home, third)  # its database sessions cut: its locks are gone, so it must stop polling
    assert survivor.proc.wait(60) == 1
    assert "lost the database connection" in survivor.output()
    assert status(home)["gateway"] == "stopped"


def end_sessions(home: Path, pid: int) -> None:
    import psycopg

    url = json.loads((home / "config.json").read_text())["storage"]["url"]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                      (f"nanofolks worker %:{pid}",))


def outbox_uncertain(home: Path) -> dict[int, set[int]]:
    """chat -> burst numbers whose reply was being sent when its sender was killed (never resent)."""
    import psycopg

    url = json.loads((home / "config.json").read_text())["storage"]["url"]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT i.chat_id, i.text FROM outbox o JOIN inbox i ON i.id = o.inbox_id"
                            " WHERE o.status = 'uncertain'").fetchall()
    out: dict[int, set[int]] = defaultdict(set)
    for chat, text in rows:
        found = BURST.search(text)
        if found:
            out[int(chat)].add(int(found.group(2)))
    return out
