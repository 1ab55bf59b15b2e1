"""`nanofolks gateway` with Discord, as a user runs it: a subprocess, the real discord.py against the loopback
Discord (REST + gateway WebSocket), the real litellm against the scripted LLM server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

GUILD, GENERAL = "1", "10"
ANN, STRANGER = "7", "9"  # ann is on allowFrom
ANN_DM, STRANGER_DM = "5007", "5009"  # their DM channels with the bot
WAIT = 60.0


@pytest.fixture
def dc() -> Iterator[FakeDiscord]:
    with FakeDiscord() as server:
        server.add_guild(GUILD, "crew hq", channels=[{"id": GENERAL, "name": "general"}])
        yield server


def configure(home: Path, dc: FakeDiscord, **channels: dict) -> None:
    path = home / "config.json"
    config = json.loads(path.read_text())
    config["channels"] = {"discord": {"enabled": True, "token": dc.token, "apiBase": dc.api_base,
                                      "gatewayUrl": dc.gateway_url, "allowFrom": [ANN]}, **channels}
    path.write_text(json.dumps(config))


@pytest.fixture
def gateway(crew_home: Path, dc: FakeDiscord) -> Iterator[Gateway]:
    configure(crew_home, dc)
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def replies_in(dc: FakeDiscord, channel_id: str) -> list[dict]:
    return [m for m in dc.sent if m["channel_id"] == channel_id]


def barrier(dc: FakeDiscord) -> None:
    """One more DM from ann, answered: everything sent before it has been handled."""
    before = len(dc.sent)
    dc.push_message(ANN_DM, "barrier ping", author_id=ANN, author_name="ann")
    dc.wait_until(lambda: any("barrier ping" in m["content"] for m in dc.sent[before:]), WAIT, "the barrier's reply")


def test_allowed_dm_answered_stranger_gets_a_pairing_code(gateway: Gateway, dc: FakeDiscord,
                                                          llm_server: ScriptedLLM) -> None:
    # A slow turn: the typing indicator starts only after a second (quick answers need none).
    llm_server.add(Rule(contains="hello crew", reply="[@leader] hello crew", delay=2.5, times=1))
    gateway.start()
    dc.push_message(ANN_DM, "hello crew", author_id=ANN, author_name="ann")
    [reply] = dc.wait_for_sent(1, WAIT)
    assert reply["channel_id"] == ANN_DM and reply["content"] == "[@leader] hello crew"
    assert reply["message_reference"] is None  # direct chats get plain answers
    assert ANN_DM in dc.typing_calls  # typing while the crew worked

    dc.push_message(STRANGER_DM, "secret plans", author_id=STRANGER, author_name="mallory")
    dc.wait_until(lambda: replies_in(dc, STRANGER_DM), WAIT, "a pairing code")
    code = re.search(r"code: `([A-Z2-9]{8})`", replies_in(dc, STRANGER_DM)[0]["content"]).group(1)
    assert not any("secret plans" in json.dumps(r) for r in llm_server.requests)  # never reached a model

    approved = run_cli("pairing", "approve", "discord", code, home=gateway.home)
    assert approved.returncode == 0, approved.stderr
    assert "@mallory" in approved.stdout
    dc.push_message(STRANGER_DM, "now may I?", author_id=STRANGER, author_name="mallory")
    dc.wait_until(lambda: any("now may I?" in m["content"] for m in replies_in(dc, STRANGER_DM)), WAIT, "an answer")

    assert gateway.stop() == 0
    log = (gateway.home / "logs" / "gateway.log").read_text()
    assert "discord: signed in as crewbot" in log and dc.token not in log


def test_guild_mention_gating_threads_rate_limit_and_drop(gateway: Gateway, dc: FakeDiscord,
                                                          llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(handle="coder", reply="Ironhook here, fixing it."))
    gateway.start()
    dc.push_message(GENERAL, "just chatting among humans", author_id=ANN, author_name="ann", guild_id=GUILD)
    dc.push_message(GENERAL, "let me in", author_id=STRANGER, author_name="mallory", guild_id=GUILD,
                    mentions_bot=True)  # a stranger: ignored in guilds, no pairing code in public
    asked = dc.push_message(GENERAL, "@coder fix the sails", author_id=ANN, author_name="ann", guild_id=GUILD,
                            mentions_bot=True)
    dc.wait_until(lambda: replies_in(dc, GENERAL), WAIT, "the mention's reply")
    barrier(dc)
    [answer] = replies_in(dc, GENERAL)
    assert answer["content"] == "Ironhook here, fixing it."
    assert answer["message_reference"]["message_id"] == asked  # answers the message it responds to
    prompts = json.dumps(llm_server.requests)
    assert f"<@{dc.bot_id}>" not in prompts and "just chatting" not in prompts and "let me in" not in prompts

    thread = dc.add_thread(GUILD, GENERAL, "plans")
    dc.push_message(thread, "a thread of our own", author_id=ANN, author_name="ann", guild_id=GUILD,
                    mentions_bot=True)
    dc.wait_until(lambda: replies_in(dc, thread), WAIT, "the thread's reply")
    rooms = json.loads(run_cli("room", "show", f"discord-thread-{thread}", "--json", home=gateway.home).stdout)
    assert rooms["type"] == "project" and len(rooms["members"]) == 6  # its own room, the whole crew

    dc.fail_next("POST /channels/*/messages", status=429, retry_after=0.1, count=5)  # discord.py gives up
    dc.push_message(ANN_DM, "rate limited hello", author_id=ANN, author_name="ann")
    dc.wait_until(lambda: any("rate limited hello" in m["content"] for m in dc.sent), WAIT, "the throttled reply")
    assert "retry 1 in 0.1s" in gateway.output()  # the outbox waited as Discord asked, then sent it

    dc.drop_gateway()
    dc.push_message(ANN_DM, "after the drop", author_id=ANN, author_name="ann")
    dc.wait_until(lambda: any("after the drop" in m["content"] for m in dc.sent), WAIT, "the answer after a drop")
    barrier(dc)
    assert sum("rate limited hello" in m["content"] for m in dc.sent) == 1
    assert dc.resume_count == 1 and dc.identify_count == 1  # resumed, not a new session


def test_long_reply_is_split_under_2000(gateway: Gateway, dc: FakeDiscord, llm_server: ScriptedLLM) -> None:
    code = "\n".join(f"    line_{i:03d} = compute({i})  # step {i}" for i in range(160))
    prose = "\n\n".join(f"Paragraph {i}: " + "the crew sails on and on. " * 12 for i in range(14))
    llm_server.add(Rule(contains="tell me everything",
                        reply=f"{prose}\n\n```python\n{code}\n```\n\nThe end of the long answer."))
    gateway.start()
    dc.push_message(ANN_DM, "tell me everything", author_id=ANN, author_name="ann")
    dc.wait_until(lambda: any("The end of the long answer." in m["content"] for m in dc.sent), 90, "the last chunk")
    chunks = [m["content"] for m in replies_in(dc, ANN_DM)]
    assert len(chunks) >= 5 and all(len(c) <= 2000 for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)  # a block cut in two is closed and reopened
    text = "\n".join(chunks)
    for i in range(160):
        assert text.count(f"line_{i:03d} = compute({i})") == 1
    assert [int(n) for n in re.findall(r"Paragraph (\d+):", text)] == list(range(14))


def test_one_person_on_telegram_and_discord_shares_one_room(crew_home: Path, dc: FakeDiscord,
                                                             llm_server: ScriptedLLM) -> None:
    alice_tg = 111
    with FakeTelegram() as tg:
        configure(crew_home, dc, telegram={"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                           "allowFrom": [str(alice_tg)], "pollTimeout": 5})
        for args in (("room", "create", "alice"), ("room", "map", "alice", f"discord:{ANN_DM}"),
                     ("room", "map", "alice", f"telegram:{alice_tg}")):
            done = run_cli(*args, home=crew_home)
            assert done.returncode == 0, done.stderr
        gateway = Gateway(crew_home).start()
        try:
            tg.push_message(alice_tg, "my parrot is called Polly", user_id=alice_tg)
            tg.wait_for_sent(1, WAIT)
            dc.push_message(ANN_DM, "what is my parrot called?", author_id=ANN, author_name="ann")
            dc.wait_for_sent(1, WAIT)
            assert gateway.stop() == 0
        finally:
            if gateway.proc.poll() is None:
                gateway.proc.kill()
    asked = [r for r in llm_server.requests if "what is my parrot called?" in json.dumps(r)]
    assert asked and "my parrot is called Polly" in json.dumps(asked[0])  # Telegram's words, in Discord's turn
    shown = json.loads(run_cli("room", "show", "alice", "--json", home=crew_home).stdout)
    assert sorted(shown["chats"]) == [f"discord:{ANN_DM}", f"telegram:{alice_tg}"]
    assert shown["messages"] >= 4  # both questions and both answers are in the one room's history
