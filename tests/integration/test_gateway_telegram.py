"""`nanofolks gateway` as a user runs it: a subprocess, the real python-telegram-bot against the loopback
Bot API server, the real litellm against the scripted LLM server. Kill it, restart it, count replies."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.channels.formatting import utf16_len
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

ALICE = 111  # on allowFrom by id
CAROL = 333  # on allowFrom by username
STRANGER = 222
GROUP = -1001


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def configure(home: Path, tg: FakeTelegram, **telegram: object) -> None:
    path = home / "config.json"
    config = json.loads(path.read_text())
    config["channels"] = {"telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                       "allowFrom": [str(ALICE), "@carol"], "pollTimeout": 5, **telegram}}
    path.write_text(json.dumps(config))


@pytest.fixture
def gateway(crew_home: Path, tg: FakeTelegram) -> Iterator[Gateway]:
    configure(crew_home, tg)
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def replies_to(tg: FakeTelegram, chat_id: int) -> list[dict]:
    return [m for m in tg.sent if m["chat_id"] == chat_id]


def barrier(tg: FakeTelegram, chat_id: int = ALICE, user_id: int = ALICE) -> None:
    """Send one more message and wait for its answer: everything sent before it has been handled."""
    before = len(tg.sent)
    tg.push_message(chat_id, "barrier ping", user_id=user_id)
    tg.wait_for(lambda: any("barrier ping" in m["text"] for m in tg.sent[before:]), 60, "the barrier's reply")


def test_allowed_dm_stranger_pairing_and_status(gateway: Gateway, tg: FakeTelegram, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(contains="hello crew", reply="[@leader] hello crew", delay=2.5, times=1))  # a slow turn
    gateway.start()
    tg.push_message(ALICE, "hello crew", user_id=ALICE)
    reply = tg.wait_for_sent(1, 60)[0]
    assert reply["chat_id"] == ALICE and reply["text"] == "[@leader] hello crew"
    assert reply["reply_to_message_id"] is None  # direct chats get plain answers
    assert tg.count("sendChatAction") >= 1  # typing while the crew worked
    assert [c["command"] for c in tg.commands()] == ["rooms", "room", "help"]

    tg.push_message(CAROL, "ahoy from carol", user_id=CAROL, username="Carol")  # allowed by username
    tg.wait_for(lambda: any("ahoy from carol" in m["text"] for m in replies_to(tg, CAROL)), 60, "carol's reply")
    carol_prompt = json.dumps([r for r in llm_server.requests if "ahoy from carol" in json.dumps(r)])
    assert "hello crew" not in carol_prompt  # her own room: alice's (the owner's) #general is not her history
    with sqlite3.connect(gateway.home / "nanofolks.db") as db:  # memory knows her by id, not by her name
        assert db.execute("SELECT sender, person FROM messages WHERE content = 'ahoy from carol'").fetchall() == [
            ("Carol", f"telegram:{CAROL}")]
    tg.push_message(CAROL, "/room general", user_id=CAROL, username="Carol")  # nor can she move into it
    tg.wait_for(lambda: any("Only the crew's owner" in m["text"] for m in replies_to(tg, CAROL)), 60, "a refusal")
    rooms = json.loads(run_cli("room", "list", "--json", home=gateway.home).stdout)
    assert {"general", f"telegram-dm-{CAROL}"} <= {r["name"] for r in rooms}

    tg.push_message(STRANGER, "secret plans", user_id=STRANGER, username="mallory")
    tg.wait_for(lambda: replies_to(tg, STRANGER), 60, "a pairing code")
    first = replies_to(tg, STRANGER)[0]["plain"]
    code = re.search(r"code: ([A-Z2-9]{8})", first).group(1)
    assert not set(code) & set("01OI")
    tg.push_message(STRANGER, "more secret plans", user_id=STRANGER, username="mallory")
    gateway.wait_log("was sent their code less than 60s ago")
    assert len(replies_to(tg, STRANGER)) == 1  # writing again at once earns no second reply (nor a new code)
    assert not any("secret plans" in json.dumps(r) for r in llm_server.requests)  # never reached a model

    listed = run_cli("pairing", "list", "--json", home=gateway.home)
    assert listed.returncode == 0, listed.stderr
    assert [p["code"] for p in json.loads(listed.stdout)["pending"]] == [code]
    approved = run_cli("pairing", "approve", "telegram", code.lower(), home=gateway.home)
    assert approved.returncode == 0, approved.stderr
    assert "@mallory" in approved.stdout
    again = run_cli("pairing", "approve", "telegram", code, home=gateway.home)
    assert again.returncode == 1 and "no pending" in again.stderr

    tg.push_message(STRANGER, "now may I?", user_id=STRANGER, username="mallory")  # no restart needed
    tg.wait_for(lambda: any("now may I?" in m["text"] for m in replies_to(tg, STRANGER)), 60, "an answer")
    assert all("secret plans" not in m["text"] for m in tg.sent)

    status = run_cli("status", "--json", home=gateway.home)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["gateway"] == "running"
    assert data["channels"][0]["state"] == "running" and data["channels"][0]["username"] == "crew_bot"

    assert gateway.stop(signal.SIGTERM) == 0  # a clean stop, well within the timeout
    assert "gateway stopped" in gateway.output()
    log = (gateway.home / "logs" / "gateway.log").read_text()
    assert "inbox" in log and tg.token not in log and "sk-test" not in log
    for private in ("", "logs", "logs/gateway.log", "nanofolks.db", "config.json"):  # nobody else may read them
        assert (gateway.home / private).stat().st_mode & 0o077 == 0, private
    stopped = json.loads(run_cli("status", "--json", home=gateway.home).stdout)
    assert stopped["gateway"] == "stopped" and stopped["channels"][0]["state"] == "stopped"


def test_groups_need_a_mention_and_an_allowed_sender(gateway: Gateway, tg: FakeTelegram,
                                                     llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(handle="coder", reply="Ironhook here, fixing it."))
    gateway.start()
    group = {"chat_type": "group", "chat_title": "Ship"}
    tg.push_message(GROUP, "just chatting among humans", user_id=ALICE, **group)
    tg.push_message(GROUP, "@crew_bot let me in", user_id=STRANGER, **group)  # a stranger: ignored in groups
    asked = tg.push_message(GROUP, "@crew_bot @coder fix the sails", user_id=ALICE, **group)
    tg.wait_for(lambda: replies_to(tg, GROUP), 60, "the mentioned message's reply")
    barrier(tg)
    answers = replies_to(tg, GROUP)
    assert len(answers) == 1
    assert answers[0]["text"] == "Ironhook here, fixing it."
    assert answers[0]["reply_to_message_id"] == tg.message_id_of(asked)  # answers the message it responds to
    coder_prompt = json.dumps([r for r in llm_server.requests if "fix the sails" in json.dumps(r)])
    assert "@crew_bot" not in coder_prompt and "just chatting" not in coder_prompt and "let me in" not in coder_prompt

    replied = tg.push_message(GROUP, "and the mast?", user_id=ALICE, reply_to_bot=True, **group)  # a reply counts
    tg.wait_for(lambda: len(replies_to(tg, GROUP)) == 2, 60, "the reply's answer")
    assert replies_to(tg, GROUP)[1]["reply_to_message_id"] == tg.message_id_of(replied)

    tg.push_message(GROUP, "/rooms@crew_bot", user_id=ALICE, **group)
    tg.wait_for(lambda: len(replies_to(tg, GROUP)) == 3, 60, "the room list")
    assert "#general" in replies_to(tg, GROUP)[2]["text"]


def test_long_reply_429_and_rejected_html(gateway: Gateway, tg: FakeTelegram, llm_server: ScriptedLLM) -> None:
    code = "\n".join(f"    line_{i:03d} = compute({i})  # step {i}" for i in range(160))
    prose = "\n\n".join(f"Paragraph {i}: " + "the crew sails on and on. " * 12 for i in range(14))
    long_reply = f"{prose}\n\n```python\n{code}\n```\n\nThe end of the long answer."
    assert len(long_reply) > 9000
    llm_server.add(Rule(contains="tell me everything", reply=long_reply))
    gateway.start()

    tg.push_message(ALICE, "tell me everything", user_id=ALICE)
    tg.wait_for(lambda: any("The end of the long answer." in m["plain"] for m in tg.sent), 90, "the last chunk")
    chunks = [m for m in tg.sent if m["chat_id"] == ALICE]
    assert len(chunks) >= 3
    assert all(utf16_len(m["plain"]) <= 4096 and m["parse_mode"] == "HTML" for m in chunks)
    text = "\n".join(m["plain"] for m in chunks)
    for i in range(160):  # every code line arrived, once, in order, inside a code block
        assert text.count(f"line_{i:03d} = compute({i})") == 1
    for m in chunks:  # each chunk's HTML is self-contained: a block cut in two is closed and reopened
        assert m["text"].count("<pre>") + m["text"].count("<pre ") == m["text"].count("</pre>")
    assert [int(n) for n in re.findall(r"Paragraph (\d+):", text)] == list(range(14))

    before = len(tg.sent)
    tg.fail_next("sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1)
    tg.push_message(ALICE, "rate limited hello", user_id=ALICE)
    tg.wait_for(lambda: len(tg.sent) > before, 60, "the throttled reply")
    barrier(tg)
    assert sum("rate limited hello" in m["text"] for m in tg.sent) == 1  # waited out, delivered once
    assert "retry 1 in 1.0s" in gateway.output()

    before = len(tg.sent)
    tg.fail_next("sendMessage", status=400, description="Bad Request: can't parse entities: unsupported start tag",
                 retry_after=None)
    llm_server.add(Rule(contains="bold please", reply="**bold** and <odd> & text"))
    tg.push_message(ALICE, "bold please", user_id=ALICE)
    tg.wait_for(lambda: len(tg.sent) > before, 60, "the plain-text resend")
    resent = tg.sent[before]
    assert resent["parse_mode"] is None and resent["text"] == "bold and <odd> & text"  # what the HTML shows


def test_kill9_mid_turn_then_restart_answers_once(gateway: Gateway, tg: FakeTelegram,
                                                  llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(contains="slow question", reply="slow answer", delay=30, times=1),
                   Rule(contains="slow question", reply="the answer after the crash"))
    gateway.start()
    tg.push_message(ALICE, "slow question", user_id=ALICE)
    deadline = time.monotonic() + 60
    while not any("slow question" in json.dumps(r) for r in llm_server.requests):  # the model call is in flight
        assert time.monotonic() < deadline, gateway.output()
        time.sleep(0.05)
    gateway.stop(signal.SIGKILL)
    assert tg.sent == []

    gateway.start()
    tg.wait_for(lambda: tg.sent, 60, "the resumed turn's reply")
    barrier(tg)
    assert [m["text"] for m in tg.sent if "answer" in m["text"]] == ["the answer after the crash"]
    assert "resuming 1 unanswered" in gateway.output()
    assert tg.count("setMyCommands") == 1  # unchanged commands are not registered again

    second = Gateway(gateway.home).start(wait=False)  # a second poller for the same bot is refused
    try:
        assert second.proc.wait(60) == 1
    finally:
        second.proc.kill()
    assert "already polling" in second.output()


def test_redelivered_malformed_and_maybe_delivered(gateway: Gateway, tg: FakeTelegram) -> None:
    gateway.start()
    first = tg.push_message(ALICE, "only once please", user_id=ALICE)
    tg.wait_for_sent(1, 60)
    tg.redeliver(first)
    for update in (
        {"edited_message": {"message_id": 50, "date": 0, "chat": {"id": ALICE, "type": "private"}, "text": "x"}},
        {"message": {"message_id": 51, "date": 0, "chat": {"id": ALICE, "type": "private"},
                     "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "sticker": {"file_id": "s"}}},
        {"message": "not an object"},
        {"channel_post": {"message_id": 52, "date": 0, "chat": {"id": -5, "type": "channel"}, "text": "news"}},
        {"message": {"message_id": 53, "date": 0, "chat": {"id": ALICE, "type": "private"},
                     "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "text": "\u202e\u0000\U0001f3f4\u200d"}},
        {"message": {"message_id": 54, "date": 0, "chat": {"id": ALICE, "type": "private"},
                     "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "text": 12345}},
    ):
        tg.push_raw_update(update)
    barrier(tg)
    assert sum("only once please" in m["text"] for m in tg.sent) == 1
    status = run_cli("status", "--json", home=gateway.home)
    [telegram] = [c for c in json.loads(status.stdout)["channels"] if c["channel"] == "telegram"]
    assert telegram["rejected"] == 3 and telegram["state"] == "running"  # the sticker, the non-object, the number
    assert "3 update(s) rejected as unreadable" in run_cli("status", home=gateway.home).stdout

    tg.drop_next("sendMessage")  # delivered, but the connection closes before the answer
    tg.push_message(ALICE, "maybe delivered", user_id=ALICE)
    gateway.wait_log("marked uncertain")
    barrier(tg)
    assert sum("maybe delivered" in m["text"] for m in tg.sent) == 1  # not blindly repeated

    assert gateway.stop() == 0
    tg.redeliver(first)  # redelivered across a restart: the inbox still knows it
    gateway.start()
    barrier(tg)
    assert sum("only once please" in m["text"] for m in tg.sent) == 1
