"""The dashboard in a real browser: Debian's chromium driven by Playwright against `nanofolks gateway` (a
subprocess) on the scripted LLM server. Sign in through the printed link, chat with a streamed reply, follow
Activity, move a task, search memory, change a setting, hire a bot by conversation and see it in the org chart
and answering its handle. Screenshots of each page go to test-artifacts/dashboard/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM, last_user_message
from tests.integration.gateway_harness import Gateway

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
REPLY = "Aye! Charting the course through the northern passage, past the reef of Tortuga."

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                "(apt-get install chromium; .ci/run installs it)")


@pytest.fixture
def gateway(crew_home: Path, llm_server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.setenv("NANOFOLKS_VAULT_PASSPHRASE", "dashboard test passphrase")  # secrets set on the page
    llm_server.add(Rule(handle="leader", contains="voyage", reply=REPLY, chunk_delay=0.8))
    gw = Gateway(crew_home).start()
    try:
        yield gw
    finally:
        gw.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "gateway-stderr.log").write_text(gw.output())


@pytest.fixture
def page(gateway: Gateway) -> Iterator:
    from playwright.sync_api import sync_playwright  # the dev extra's: missing is a failure, not a skip

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))  # never a browser of its own
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(30_000)  # a loaded machine: a click's answer may take seconds
            yield page
        finally:
            browser.close()


# Every text the reply's bubble showed while it was written (the test process may look too late to catch one).
WATCH_STREAMING = """() => {
  window.streamed = [];
  new MutationObserver(() => {
    const body = document.querySelector('#streaming .streaming .body');
    if (body) window.streamed.push(body.textContent);
  }).observe(document.getElementById('streaming'), {childList: true, subtree: true, characterData: true});
}"""


def login_link(home: Path) -> tuple[str, str]:
    printed = run_cli("dashboard", "--no-open", home=home)
    assert printed.returncode == 0, printed.stderr
    link = re.search(r"(http://\S+)/login\?token=\S+", printed.stdout)
    assert link, printed.stdout
    return link.group(1), link.group(0)


def shot(page, name: str) -> None:  # noqa: ANN001 - a playwright Page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.2)


def test_the_dashboard_in_a_browser(gateway: Gateway, page, llm_server: ScriptedLLM) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # each look waits on the page's state, never a fixed sleep

    base, link = login_link(gateway.home)

    # Refused without the link: every page is the sign-in notice.
    refused = page.goto(f"{base}/chat/general")
    assert refused.status == 401
    expect(page.locator("main")).to_contain_text("nanofolks dashboard")
    shot(page, "01-refused")

    page.goto(link)  # opening it spends nothing (a chat app's link preview would); the button does
    page.click("#sign-in")
    assert page.url == f"{base}/chat/general"
    page.goto(link)
    page.click("#sign-in")
    expect(page.locator(".problem")).to_contain_text("used, expired or wrong")  # the link worked once
    page.goto(f"{base}/chat/general")

    # Chat: @ completion, then the reply seen while it is written, then stored with the bot's name and emoji.
    box = page.locator("#text")
    box.type("@lea")
    expect(page.locator("#mention-list li").first).to_contain_text("@leader")
    box.press("Tab")
    assert box.input_value() == "@leader "
    box.type("plan the voyage")
    page.evaluate(WATCH_STREAMING)
    box.press("Enter")
    history = page.locator("#history")
    expect(page.locator("#sending")).to_contain_text("@leader plan the voyage")  # at once, before the turn starts
    expect(history.locator(".msg.person")).to_contain_text("@leader plan the voyage", timeout=60_000)
    expect(page.locator("#sending .pending")).to_have_count(0)
    expect(page.locator("#streaming .streaming .body")).not_to_be_empty(timeout=30_000)
    shot(page, "02-chat-streaming")
    reply = history.locator(".msg.bot").last
    expect(reply).to_contain_text(REPLY, timeout=30_000)
    written = page.evaluate("window.streamed")
    assert any(text and REPLY.startswith(text) and text != REPLY for text in written), written  # seen part-written
    expect(reply.locator(".who")).to_contain_text("@leader (🏴‍☠️ Blackbeard)")
    expect(page.locator("#streaming .streaming")).to_have_count(0)
    shot(page, "03-chat")

    # The same room from another chat (the terminal): its message and reply appear on the page, live.
    told = run_cli("chat", "-m", "ahoy from the terminal", "--no-stream", home=gateway.home)
    assert told.returncode == 0, told.stderr
    expect(history).to_contain_text("ahoy from the terminal", timeout=30_000)
    expect(history).to_contain_text("[@leader] ahoy from the terminal")
    rooms = json.loads(run_cli("room", "show", "general", "--json", home=gateway.home).stdout)
    assert "web:general" in json.dumps(rooms)  # the page's chat is mapped to the room like any chat
    terminal_turn = next(r for r in llm_server.requests if last_user_message(r["messages"]).endswith("ahoy from the terminal"))
    assert "plan the voyage" in json.dumps(terminal_turn["messages"])  # the terminal's turn read the page's words

    # Activity: what happened, then something new arriving without a reload.
    page.goto(f"{base}/activity")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("plan the voyage")
    expect(timeline).to_contain_text("Charting the course")
    run_cli("chat", "-m", "second word from the terminal", "--no-stream", home=gateway.home)
    expect(timeline).to_contain_text("second word from the terminal", timeout=30_000)
    page.select_option("select[name=bot]", "leader")
    page.click("text=Filter")
    expect(timeline).to_contain_text("Charting the course")
    expect(timeline).not_to_contain_text("plan the voyage")  # the person's message is not the leader's
    shot(page, "04-activity")

    # Tasks: create, move, hand off; the history keeps each step.
    page.goto(f"{base}/tasks")
    page.fill("input[name=title]", "Chart the reef")
    page.select_option("#tasks form[hx-post$='/new'] select[name=owner]", "coder")
    page.click("text=Add task")
    card = page.locator("#col-todo #task-1")
    expect(card).to_contain_text("Chart the reef")
    page.select_option("#task-1 select[name=status]", "in_progress")
    page.click("#task-1 >> text=Move")
    expect(page.locator("#col-in_progress #task-1")).to_contain_text("Chart the reef")
    expect(page.locator("#col-todo #task-1")).to_have_count(0)
    page.select_option("#task-1 select[name=owner]", "researcher")
    page.fill("#task-1 input[name=reason]", "needs the charts first")
    page.click("#task-1 >> text=Hand off")
    expect(page.locator("#task-1 .meta")).to_contain_text("@researcher")
    page.click("#task-1 summary")
    expect(page.locator("#task-1 details")).to_contain_text("needs the charts first")
    shot(page, "05-tasks")

    # Memory: the hybrid search finds the conversation (indexed in the background).
    def found() -> bool:
        page.goto(f"{base}/memory?q=northern passage reef")
        return "Charting the course" in page.locator("#hits").inner_text()

    eventually(found, "the reply in a memory search")
    shot(page, "06-memory")

    # Board: rooms, members, the chats mapped; a room created here.
    page.goto(f"{base}/board")
    expect(page.locator("#room-general")).to_contain_text("web:general")
    page.fill("input[name=name]", "voyage-plans")
    page.click("#board button:has-text('Create')")
    expect(page.locator("#board")).to_contain_text("room #voyage-plans created")
    page.fill("input[name=name]", "bad name!")
    page.click("#board button:has-text('Create')")
    expect(page.locator("#board .problem")).to_contain_text("invalid room name")
    shot(page, "07-board")

    # Settings: the schema refuses a bad value; a secret goes to the vault and is never shown.
    page.goto(f"{base}/settings")
    limit = page.locator("form:has(input[value='spend.dailyLimitUsd'])")
    limit.locator("input[name=value]").fill("-3")
    limit.locator("button").click()
    expect(page.locator("#settings .problem")).to_contain_text("dailyLimitUsd")
    page.locator("form:has(input[value='spend.dailyLimitUsd']) input[name=value]").fill("5")
    page.locator("form:has(input[value='spend.dailyLimitUsd']) button").click()
    expect(page.locator("#settings .done-note")).to_contain_text("spend.dailyLimitUsd = 5")
    key = page.locator("form:has(input[value='providers.anthropic.apiKey'])")
    key.locator("input[name=value]").fill("sk-ant-api03-dashboardtestsecretvalue0123456789")
    key.locator("button").click()
    expect(page.locator("#settings .done-note")).to_contain_text("in the vault")
    assert "dashboardtestsecretvalue" not in page.content()
    expect(page.locator("form:has(input[value='providers.anthropic.apiKey']) input[name=value]")).to_have_attribute(
        "placeholder", "set (type to replace)")
    assert "dashboardtestsecretvalue" not in (gateway.home / "config.json").read_text()
    shot(page, "08-settings")

    # Hiring by conversation on the page: proposed, agreed, then in the org chart and answering its handle.
    page.goto(f"{base}/chat/general")
    say(page, "I'd like to hire a researcher who watches industry trends")
    expect(page.locator("#history")).to_contain_text("Hiring proposal", timeout=60_000)
    say(page, "yes")
    expect(page.locator("#history")).to_contain_text("Hired", timeout=60_000)

    page.goto(f"{base}/org")
    leader = page.locator(".tree > li > .node#bot-leader")
    expect(leader).to_contain_text("Blackbeard")
    expect(page.locator(".tree > li > ul .node#bot-coder")).to_contain_text("idle")
    expect(page.locator("#bot-coder")).to_contain_text("openai/fake-model")
    hired = page.locator(".tree > li > ul .node#bot-bess")  # reports to the leader
    expect(hired).to_contain_text("Barnacle Bess")
    expect(hired).to_contain_text("$0.0000 today")
    shot(page, "09-org")

    page.goto(f"{base}/chat/general")
    box = page.locator("#text")
    box.type("@bes")
    expect(page.locator("#mention-list li").first).to_contain_text("@bess")
    box.press("Tab")
    box.type("what are the trends?")
    box.press("Enter")
    answer = page.locator("#history .msg.bot").last
    expect(answer).to_contain_text("[@bess] @bess what are the trends?", timeout=60_000)
    expect(answer.locator(".who")).to_contain_text("@bess (")
    shot(page, "10-hired-answers")

    page.click("nav button:has-text('Sign out')")  # a plain form post from the page, as the browser sends it
    expect(page.locator("main")).to_contain_text("signed out")
    assert page.goto(f"{base}/board").status == 401

    assert "Traceback" not in gateway.output(), [line for line in gateway.output().splitlines() if "ERROR" in line]


def say(page, text: str) -> None:  # noqa: ANN001 - a playwright Page
    from playwright.sync_api import expect

    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#history")).to_contain_text(text, timeout=60_000)
