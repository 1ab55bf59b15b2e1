"""Hiring by conversation through the real pipeline (litellm against the scripted LLM server, the real store
and workspace), and through `nanofolks gateway` on the fake Telegram: propose, agree, and the new @handle
answers at once, in the gateway, in `chat -m`, and after `bot create` / `bot retire` from the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.config.paths import config_path
from nanofolks.crew.hiring import retire_bot
from nanofolks.orchestrator.pipeline import CREW_LOOK_SECONDS
from nanofolks.services import Services
from nanofolks.store.crew import CrewRepo
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM, last_user_message
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway
from tests.integration.test_gateway_telegram import ALICE, configure

ASK = "I'd like to hire a researcher who watches industry trends"


@pytest.fixture
def services(crew_home: Path) -> Iterator[Services]:
    services = Services.open()
    yield services
    services.close()


async def say(services: Services, text: str, room: str = "general", sender: str = "user",
              scope: tuple[int, ...] | None = None):  # noqa: ANN201
    return await services.pipeline.handle(services.rooms.get(room), text, sender=sender, scope=scope)


def bots_dir(services: Services) -> Path:
    return services.workspace / "crew" / "bots"


async def test_propose_then_agree_hires_into_every_room(services: Services, llm_server: ScriptedLLM) -> None:
    services.rooms.create("ops", "project")  # a room with only the leader: the hire joins it too
    proposal = await say(services, ASK)
    text = proposal.markdown()
    assert "Hiring proposal" in text and "Barnacle Bess** (@bess), Scout" in text and "Reply **yes**" in text
    assert not (bots_dir(services) / "bess").exists()  # nothing is applied without a yes
    leader_saw = last_user_message(llm_server.requests[-1]["messages"])
    assert "[Hiring desk, not from the user]" in leader_saw and "Barnacle Bess (@bess)" in leader_saw
    assert proposal.parts[0].bot == "leader" and len(llm_server.requests) == 1  # no specialist consulted
    # the scripted model echoes the desk's note: the user gets a plain line instead (small models do the same)
    assert proposal.parts[0].text == "Here is who I would hire; the details are below. Shall I?"

    done = await say(services, "yes, hire them")
    assert "✓ Hired **🔭 Barnacle Bess** (@bess)" in done.markdown()
    assert services.crew.bots["bess"].supervisor == "leader"  # the running pipeline's crew, no reload
    assert {r.name: "bess" in r.members for r in services.rooms.list()} == {"general": True, "ops": True}
    assert services.config.spend.bots["bess"].daily_limit_usd == 0.5  # the role's spend limit, kept in config
    assert json.loads(config_path().read_text())["spend"]["bots"]["bess"]["dailyLimitUsd"] == 0.5
    assert [c.action for c in CrewRepo(services.db).changes("bess")] == ["hired"]

    hello = await say(services, "@bess what is new?", room="ops")
    assert hello.parts[0].bot == "bess" and hello.markdown().startswith("[@bess]")
    again = await say(services, "yes")  # the proposal is used up: a plain yes is just a message
    assert "Hired" not in again.markdown()

    retire_bot(services.workspace, services.crew, "bess")
    assert services.crew.refresh()  # what the pipeline does at a turn once its last look is a second old
    gone = await say(services, "@bess still there?", room="ops")
    assert gone.parts[0].bot == "leader" and "@bess has retired from the crew" in gone.markdown()
    ops = services.rooms.get("ops")
    assert [m.author for m in services.messages.recent(ops.id, 10)].count("bess") == 1  # its history is kept


async def test_decline_and_a_new_request_replaces_the_draft(services: Services) -> None:
    await say(services, ASK)
    second = await say(services, "hire a designer who makes our posters")
    assert "(@bess), Figurehead Carver" in second.markdown()  # the newest draft is the proposal
    pending = CrewRepo(services.db).pending(services.rooms.general().id)
    assert pending is not None and [c["role"] for c in pending.proposal] == ["Designer who makes our posters"]
    dropped = await say(services, "no, never mind")
    assert "proposal dropped" in dropped.markdown()
    after = await say(services, "yes")
    assert "Hired" not in after.markdown() and not (bots_dir(services) / "bess").exists()


async def test_renaming_the_candidate_redrafts_the_proposal(services: Services) -> None:
    await say(services, ASK)
    renamed = await say(services, "yes but call her Sandy Shores")
    assert "Sandy Shores** (@shores), Scout" in renamed.markdown() and "Hired" not in renamed.markdown()
    clash = await say(services, "hmm, name her Ironhook")  # the coder's name: refused, the draft stays
    assert "already taken" in clash.markdown()
    done = await say(services, "yes")
    assert "✓ Hired **🔭 Sandy Shores** (@shores)" in done.markdown()
    assert services.crew.bots["shores"].role == "Researcher who watches industry trends"


async def test_only_the_owner_who_asked_agrees_in_that_room(services: Services) -> None:
    room = services.rooms.create("team", "open")
    refused = await say(services, ASK, room="team", sender="carol", scope=(room.id,))
    assert "Only the crew's owner can hire" in refused.markdown()
    await say(services, ASK, room="team", sender="alice")
    other = await say(services, "yes", room="team", sender="bob")
    assert "Only alice, who asked for this hire, can agree" in other.markdown()
    elsewhere = await say(services, "yes", room="general", sender="alice")  # another room has no proposal
    assert "Hired" not in elsewhere.markdown() and not (bots_dir(services) / "bess").exists()
    done = await say(services, "yes", room="team", sender="alice")
    assert "✓ Hired" in done.markdown()


async def test_one_request_hires_several(services: Services) -> None:
    services.config.crew.max_hires_per_day = 2
    both = await say(services, "I'd like to hire a researcher who monitors industry trends, and an engineer who "
                               "manages our infrastructure.")
    text = both.markdown()
    assert "Barnacle Bess** (@bess), Scout" in text and "Salty Jonah** (@jonah), Carpenter" in text
    hired = (await say(services, "hire them both")).markdown()
    assert "(@bess)" in hired and "(@jonah)" in hired and services.crew.bots["jonah"].tier == "coding"
    assert "exec" in services.crew.bots["jonah"].tools  # the coder template's tools
    refused = await say(services, "hire a designer")
    assert "That would be hire 3 today" in refused.markdown()


async def test_caps_refuse_in_plain_words(services: Services) -> None:
    services.config.crew.max_hires_per_day = 1
    await say(services, ASK)
    await say(services, "yes")
    refused = await say(services, "hire an engineer who runs our servers")
    assert "at most 1 a day (crew.maxHiresPerDay)" in refused.markdown()
    services.config.crew.max_hires_per_day = 5
    services.config.crew.max_size = 7
    full = await say(services, "hire an engineer who runs our servers")
    assert "The crew is full: 7 of 7 members (crew.maxSize)" in full.markdown()


async def test_the_model_cannot_confirm_without_the_users_yes(services: Services, llm_server: ScriptedLLM) -> None:
    """A model that calls the tools: it refines the draft, and its confirm_hire is refused until the user agrees."""
    llm_server.add(
        Rule(handle="leader", contains="scout for trends", has_tool_result=False, times=1, tool_calls=[
            {"name": "propose_hire", "arguments": {"role": "researcher", "focus": "watches trends",
                                                   "name": "Dread Nell", "supervisor": "researcher"}},
            {"name": "confirm_hire", "arguments": {}}]),
        Rule(handle="leader", has_tool_result=True, reply="Here is my pick: {tool_result}"),
    )
    answer = await say(services, "we need a scout for trends, find one")
    text = answer.markdown()
    assert "Dread Nell** (@nell)" in text and "Reports to: @researcher (Compass Kate)" in text
    assert "error: the user has not agreed" in text and not (bots_dir(services) / "nell").exists()
    done = await say(services, "looks good")
    assert "✓ Hired **🔭 Dread Nell** (@nell)" in done.markdown()
    assert services.crew.bots["nell"].supervisor == "researcher"


# --- through the gateway -----------------------------------------------------------------------------

@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def gateway(crew_home: Path, tg: FakeTelegram) -> Iterator[Gateway]:
    configure(crew_home, tg, allowFrom=[str(ALICE)])
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def send(tg: FakeTelegram, text: str) -> str:
    """Alice's message and the crew's reply (plain text, as Telegram shows it)."""
    before = len(tg.sent)
    tg.push_message(ALICE, text, user_id=ALICE)
    tg.wait_for(lambda: len(tg.sent) > before, 60, f"the reply to {text!r}")
    return "\n".join(m["plain"] for m in tg.sent[before:])


def test_hire_by_conversation_in_a_running_gateway(gateway: Gateway, tg: FakeTelegram, tmp_path: Path) -> None:
    gateway.start()
    proposal = send(tg, ASK)
    assert "Hiring proposal" in proposal and "Barnacle Bess (@bess)" in proposal
    assert "✓ Hired" in send(tg, "yes")
    assert send(tg, "@bess what are the trends?").startswith("[@bess]")  # the new bot answers its handle

    chat = run_cli("chat", "-m", "@bess hello from the terminal", home=gateway.home)
    assert chat.returncode == 0, chat.stderr
    assert "[@bess] @bess hello from the terminal" in chat.stdout
    listed = json.loads(run_cli("bot", "list", "--json", home=gateway.home).stdout)
    assert {"handle": "bess", "supervisor": "leader", "retired": False}.items() <= \
        next(b for b in listed if b["handle"] == "bess").items()

    card = tmp_path / "scout.md"  # a hire from the CLI reaches the running gateway too
    card.write_text("---\nhandle: scout\nname: Sea Scout\ntemplate: researcher\nsupervisor: bess\n---\n",
                    encoding="utf-8")
    created = run_cli("bot", "create", "--from-md", str(card), home=gateway.home)
    assert created.returncode == 0, created.stderr
    time.sleep(CREW_LOOK_SECONDS)  # the running gateway looks at the crew's cards at most this often
    assert send(tg, "@scout report").startswith("[@scout]")
    retired = run_cli("bot", "retire", "scout", home=gateway.home)
    assert retired.returncode == 0, retired.stderr
    time.sleep(CREW_LOOK_SECONDS)
    assert "@scout has retired from the crew" in send(tg, "@scout report again")
    listed = json.loads(run_cli("bot", "list", "--json", home=gateway.home).stdout)
    assert next(b for b in listed if b["handle"] == "scout")["retired"] is True


async def test_a_bot_delegates_only_down_the_org(services: Services, llm_server: ScriptedLLM) -> None:
    from nanofolks.crew.hiring import set_supervisor

    set_supervisor(services.workspace, services.crew, "auditor", "coder")
    llm_server.add(
        Rule(handle="coder", has_tool_result=False, times=1, tool_calls=[
            {"name": "delegate", "arguments": {"bot": "researcher", "task": "look it up"}},
            {"name": "delegate", "arguments": {"bot": "auditor", "task": "review the patch"}}]),
        Rule(handle="auditor", reply="Reviewed: fine."),
        Rule(handle="coder", has_tool_result=True, reply="Done."),
    )
    await say(services, "@coder ship the patch")  # the pipeline reloads the crew: the new supervisor counts
    coder_calls = [r for r in llm_server.requests if "(@coder)" in r["messages"][0]["content"]]
    assert "delegate" in [t["function"]["name"] for t in coder_calls[0]["tools"]]  # its card lacks it
    results = [m["content"] for m in coder_calls[-1]["messages"] if m["role"] == "tool"]
    assert results[0].startswith("error: @researcher does not report to you; you may delegate to: @auditor")
    assert "@auditor (Sharp-Eye Meg) finished task" in results[1]


def test_bot_create_refuses_a_bad_file_in_one_line(crew_home: Path, tmp_path: Path) -> None:
    card = tmp_path / "evil.md"
    card.write_text("---\nhandle: ../evil\nname: Evil\n---\n", encoding="utf-8")
    result = run_cli("bot", "create", "--from-md", str(card), home=crew_home)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "invalid handle '../evil'" in result.stderr
    assert not (tmp_path / "evil").exists() and not list((crew_home / "workspace").rglob("*evil*"))
