"""`nanofolks gateway` with Slack enabled, as a user runs it: a subprocess, the real slack-bolt in Socket Mode
against the loopback Slack, the real litellm against the scripted LLM server; and Slack next to Telegram."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.channels.formatting import SLACK_LIMIT
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

ANN = "U1"  # on allowFrom
STRANGER = "U9"
TG_ALICE = 111
WAIT = 60.0


class SlowSlack(FakeSlack):
    """A Slack whose chat.postMessage can be held until the test lets it answer (a slow platform)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_posts = False
        self.posts_started: list[float] = []  # monotonic times chat.postMessage calls came in

    async def _post_message(self, params: dict) -> dict:
        self.posts_started.append(time.monotonic())
        deadline = time.monotonic() + 25  # below slack-sdk's 30 s timeout: a held post still succeeds
        while self.hold_posts and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return await super()._post_message(params)


@pytest.fixture
def slack() -> Iterator[SlowSlack]:
    with SlowSlack() as server:
        server.add_user(ANN, "ann")
        yield server


def configure(home: Path, slack: FakeSlack, tg: FakeTelegram | None = None) -> None:
    path = home / "config.json"
    config = json.loads(path.read_text())
    channels = {"slack": {"enabled": True, "botToken": slack.bot_token, "appToken": slack.app_token,
                          "apiBase": slack.api_base, "allowFrom": [ANN]}}
    if tg is not None:
        channels["telegram"] = {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                "allowFrom": [str(TG_ALICE)], "pollTimeout": 5}
    config["channels"] = channels
    path.write_text(json.dumps(config))


@pytest.fixture
def gateway(crew_home: Path, slack: SlowSlack) -> Iterator[Gateway]:
    configure(crew_home, slack)
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def posts_to(slack: FakeSlack, channel: str) -> list[dict]:
    return [p for p in list(slack.posted) if p["channel"] == channel]


def barrier(slack: FakeSlack) -> None:
    """One more DM, answered: everything sent before it has been handled."""
    ts = slack.push_message("DBAR", "barrier ping", user=ANN)
    slack.wait_until(lambda: any(p["thread_ts"] == ts for p in posts_to(slack, "DBAR")), WAIT, "the barrier's reply")


def test_dm_in_thread_stranger_pairing_and_secrets_masked(gateway: Gateway, slack: SlowSlack,
                                                          llm_server: ScriptedLLM) -> None:
    gateway.start()
    ts = slack.push_message("D1", "hello crew", user=ANN)
    [reply] = slack.wait_for_posted(1, WAIT)
    assert reply["channel"] == "D1" and reply["thread_ts"] == ts  # answered in the message's thread
    assert reply["text"] == "[@leader] hello crew"

    slack.push_message("D9", "secret plans", user=STRANGER)
    slack.wait_until(lambda: posts_to(slack, "D9"), WAIT, "a pairing code")
    code = re.search(r"code: `([A-Z2-9]{8})`", posts_to(slack, "D9")[0]["text"]).group(1)
    assert "nanofolks pairing approve slack" in posts_to(slack, "D9")[0]["text"]
    barrier(slack)
    assert not any("secret plans" in json.dumps(r) for r in llm_server.requests)  # never reached a model
    # every envelope acknowledged, the echoes of our own posts too (those come right after each post)
    slack.wait_until(lambda: slack.unacked == 0, WAIT, "every envelope acked")
    assert slack.expired == [] and len(slack.acks) == len({d["envelope_id"] for d in slack.delivered})

    approved = run_cli("pairing", "approve", "slack", code, home=gateway.home)
    assert approved.returncode == 0, approved.stderr
    asked = slack.push_message("D9", "now may I?", user=STRANGER)  # no restart needed
    slack.wait_until(lambda: any(p["thread_ts"] == asked for p in posts_to(slack, "D9")), WAIT, "an answer")
    assert all("secret plans" not in p["text"] for p in slack.posted)

    assert gateway.stop(signal.SIGTERM) == 0
    log = (gateway.home / "logs" / "gateway.log").read_text()
    assert "slack: signed in as @crewbot" in log and code not in log
    assert slack.bot_token not in log and slack.app_token not in log


def test_channel_mention_answered_once_and_a_drop_survived(gateway: Gateway, slack: SlowSlack,
                                                           llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(handle="coder", reply="Ironhook here, fixing it."))
    gateway.start()
    slack.push_message("C1", "just humans chatting", user=ANN, channel_type="channel")
    slack.push_message("C1", "let me in", user=STRANGER, channel_type="channel", mention=True)  # not allowed
    asked = slack.push_message("C1", "@coder fix the sails", user=ANN, channel_type="channel", mention=True)
    slack.wait_until(lambda: posts_to(slack, "C1"), WAIT, "the mention's answer")
    barrier(slack)
    [answer] = posts_to(slack, "C1")  # message + app_mention for the same ts: one answer
    assert answer["thread_ts"] == asked and answer["text"] == "Ironhook here, fixing it."
    prompts = json.dumps([r for r in llm_server.requests if "fix the sails" in json.dumps(r)])
    assert "<@UBOT>" not in prompts and "just humans" not in prompts and "let me in" not in prompts

    opened = slack.connections_opened
    slack.drop_socket()
    slack.wait_until(lambda: slack.connections_opened > opened and slack.open_sockets == 1, WAIT, "a reconnect")
    ts = slack.push_message("D1", "still there?", user=ANN)
    slack.wait_until(lambda: any(p["thread_ts"] == ts for p in posts_to(slack, "D1")), WAIT, "the answer after it")


def test_long_reply_split_and_rate_limit_waited_out(gateway: Gateway, slack: SlowSlack,
                                                    llm_server: ScriptedLLM) -> None:
    code = "\n".join(f"    line_{i:03d} = compute({i})  # step {i}" for i in range(160))
    prose = "\n\n".join(f"**Paragraph {i}**: " + "the crew sails on and on. " * 12 for i in range(14))
    long_reply = f"{prose}\n\n```python\n{code}\n```\n\nThe end of the long answer."
    assert len(long_reply) > 2 * SLACK_LIMIT
    llm_server.add(Rule(contains="tell me everything", reply=long_reply))
    gateway.start()
    slack.fail_next("chat.postMessage", status=429, retry_after=1)  # the first chunk is throttled once
    ts = slack.push_message("D1", "tell me everything", user=ANN)
    slack.wait_until(lambda: any("The end of the long answer." in p["text"] for p in slack.posted), 90, "the end")
    chunks = posts_to(slack, "D1")
    assert len(chunks) >= 3 and all(len(p["text"]) <= SLACK_LIMIT and p["thread_ts"] == ts for p in chunks)
    text = "\n".join(p["text"] for p in chunks)
    for i in range(160):  # every code line arrived once, in order
        assert text.count(f"line_{i:03d} = compute({i})") == 1
    assert [int(n) for n in re.findall(r"\*Paragraph (\d+)\*:", text)] == list(range(14))  # mrkdwn bold
    assert all(p["text"].count("```") % 2 == 0 for p in chunks)  # a cut code block is closed and reopened
    assert [s for _, m, s in slack.requests if m == "chat.postMessage"][0] == 429
    assert "retry 1 in 1.0s" in gateway.output()


def test_a_slow_model_gets_a_notice_then_a_plain_out_of_time_answer_and_holds_nobody(
        gateway: Gateway, slack: SlowSlack, llm_server: ScriptedLLM) -> None:
    """Slack has no typing indicator: a "still working" line, then the out-of-time answer at the turn's
    deadline; the next message in the room is answered without waiting for the slow model."""
    deadline = 4.0
    path = gateway.home / "config.json"
    config = json.loads(path.read_text())
    config["orchestrator"] = {**config.get("orchestrator", {}), "turnDeadline": deadline, "stillWorkingAfter": 0.5}
    path.write_text(json.dumps(config))
    gateway.start()
    barrier(slack)  # the first turn imports litellm: out of the measured part
    slow = slack.push_message("D1", "[[delay:60]] a hard one", user=ANN)
    slack.wait_until(lambda: any("a hard one" in json.dumps(r) for r in llm_server.requests), WAIT, "the slow call")
    pushed = time.monotonic()
    quick = slack.push_message("D1", "and a quick one", user=ANN)
    slack.wait_until(lambda: any(p["text"] == "[@leader] and a quick one" for p in slack.posted), WAIT, "the answer")
    assert time.monotonic() - pushed < deadline + 10  # not the slow model's 2 attempts of 20 s
    thread = [p["text"] for p in posts_to(slack, "D1") if p["thread_ts"] == slow]
    assert len(thread) == 2 and thread[0] == "Still working on it…", thread
    assert "ran out of time (the crew has 4 s per message)" in thread[1]
    *waited, answer = [p["text"] for p in posts_to(slack, "D1") if p["thread_ts"] == quick]
    assert answer == "[@leader] and a quick one" and waited in ([], ["Still working on it…"])  # it waited in line


def test_kill9_mid_turn_then_restart_answers_once(gateway: Gateway, slack: SlowSlack,
                                                  llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(contains="slow question", reply="slow answer", delay=30, times=1),
                   Rule(contains="slow question", reply="the answer after the crash"))
    gateway.start()
    ts = slack.push_message("D1", "slow question", user=ANN)
    deadline = time.monotonic() + WAIT
    while not any("slow question" in json.dumps(r) for r in llm_server.requests):  # the turn is in flight
        assert time.monotonic() < deadline, gateway.output()
        time.sleep(0.05)
    slack.wait_until(lambda: slack.unacked == 0, WAIT, "the ack")  # acked once stored: no redelivery
    gateway.stop(signal.SIGKILL)
    assert slack.posted == []

    gateway.start()
    slack.wait_until(lambda: slack.posted, WAIT, "the resumed turn's reply")
    barrier(slack)
    answers = [p for p in slack.posted if "answer" in p["text"]]
    assert [(p["text"], p["thread_ts"]) for p in answers] == [("the answer after the crash", ts)]
    assert "resuming 1 unanswered" in gateway.output()

    second = Gateway(gateway.home).start(wait=False)  # a second gateway on the same app token is refused
    try:
        assert second.proc.wait(WAIT) == 1
    finally:
        second.proc.kill()
    assert "already polling" in second.output()


def test_a_slow_slack_does_not_delay_telegram(crew_home: Path, slack: SlowSlack) -> None:
    with FakeTelegram() as tg:
        configure(crew_home, slack, tg)
        gw = Gateway(crew_home)
        try:
            gw.start()
            tg.push_message(TG_ALICE, "warm up", user_id=TG_ALICE)  # the first turn imports litellm
            tg.wait_for(lambda: tg.sent, WAIT, "the warm-up reply")
            idle_started = time.monotonic()
            tg.push_message(TG_ALICE, "slack is idle", user_id=TG_ALICE)
            tg.wait_for(lambda: any("slack is idle" in m["text"] for m in tg.sent), WAIT, "the baseline reply")
            tg_idle = time.monotonic() - idle_started

            slack.hold_posts = True  # Slack now takes its time over every post
            slack_started = time.monotonic()
            slack.push_message("D1", "slow platform", user=ANN)
            slack.wait_until(lambda: slack.posts_started, WAIT, "the Slack post in flight")
            tg_started = time.monotonic()
            tg.push_message(TG_ALICE, "quick platform", user_id=TG_ALICE)
            tg.wait_for(lambda: any("quick platform" in m["text"] for m in tg.sent), WAIT, "the Telegram reply")
            tg_busy = time.monotonic() - tg_started
            assert slack.posted == []  # Telegram answered while Slack's post was still hanging
            slack.hold_posts = False
            slack.wait_for_posted(1, WAIT)
            slack_latency = time.monotonic() - slack_started
            print(f"\nreply latency: telegram {tg_idle:.2f}s with slack idle, {tg_busy:.2f}s while a slack post "
                  f"hung; slack {slack_latency:.2f}s (held until telegram had answered)")
            assert gw.stop() == 0
        finally:
            gw.close()
