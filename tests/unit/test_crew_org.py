"""The crew as an organization: supervisors, cycles, the org tree, delegation rules, drafting a hire in the
team's style, caps, bot files, retiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanofolks.config.schema import Config
from nanofolks.crew.cards import set_field
from nanofolks.crew.crew import HANDLES, Crew, CrewError, check_handle, install_team, load_crew
from nanofolks.crew.hiring import (
    check_caps,
    draft,
    parse_bot_file,
    retire_bot,
    role_templates,
    set_supervisor,
    split_request,
    team_style,
    write_bot,
)
from nanofolks.crew.org import flatten, may_delegate, org_tree
from nanofolks.crew.prompt import system_prompt
from nanofolks.orchestrator.dispatch import dispatch
from nanofolks.orchestrator.hiring import hire_request, reply_to_proposal
from nanofolks.orchestrator.tag import tag
from nanofolks.orchestrator.turn import Intent
from nanofolks.store.rooms import Room


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    install_team(tmp_path, "pirate_crew")
    return tmp_path


def crew_of(workspace: Path) -> Crew:
    return load_crew(workspace)


def hire(workspace: Path, noun: str, focus: str = "", **refine: str) -> str:
    candidate = draft(crew_of(workspace), noun, focus, **refine)
    write_bot(workspace, candidate)
    return candidate.handle


# --- supervisors and the tree ---

def test_every_bot_reports_to_the_leader_by_default(workspace: Path) -> None:
    crew = crew_of(workspace)
    assert crew.bots["leader"].supervisor == ""
    assert {b.supervisor for h, b in crew.bots.items() if h != "leader"} == {"leader"}
    tree = org_tree(crew, Config())
    assert tree.handle == "leader" and [r.handle for r in tree.reports] == list(HANDLES[1:])
    assert tree.as_dict()["reports"][0]["model"] == Config().agents.defaults.model


def test_set_supervisor_builds_a_deeper_tree_and_refuses_loops(workspace: Path) -> None:
    set_supervisor(workspace, crew_of(workspace), "auditor", "coder")
    crew = crew_of(workspace)
    rows = [(depth, node.handle) for depth, node in flatten(org_tree(crew, Config()))]
    assert (2, "auditor") in rows and rows.index((2, "auditor")) == rows.index((1, "coder")) + 1
    with pytest.raises(CrewError, match="loop"):
        set_supervisor(workspace, crew, "coder", "auditor")
    with pytest.raises(CrewError, match="itself"):
        set_supervisor(workspace, crew, "coder", "coder")
    with pytest.raises(CrewError, match="no active bot @ghost"):
        set_supervisor(workspace, crew, "coder", "ghost")
    with pytest.raises(CrewError, match="reports to nobody"):
        set_supervisor(workspace, crew, "leader", "coder")


def test_a_hand_edited_loop_or_unknown_supervisor_falls_back_to_the_leader(workspace: Path) -> None:
    roles = workspace / "crew" / "roles"
    set_field(roles / "coder.md", "supervisor", "auditor")
    set_field(roles / "auditor.md", "supervisor", "coder")
    set_field(roles / "social.md", "supervisor", "nobody")
    crew = crew_of(workspace)
    assert crew.bots["social"].supervisor == "leader"
    assert "leader" in {crew.bots["coder"].supervisor, crew.bots["auditor"].supervisor}
    assert any("loop" in p for p in crew.problems) and any("@nobody" in p for p in crew.problems)


def test_delegation_follows_the_org(workspace: Path) -> None:
    set_supervisor(workspace, crew_of(workspace), "auditor", "coder")
    crew = crew_of(workspace)
    assert may_delegate(crew, "leader", "auditor") and may_delegate(crew, "coder", "auditor")
    assert not may_delegate(crew, "auditor", "coder") and not may_delegate(crew, "researcher", "coder")
    assert not may_delegate(crew, "coder", "coder")
    assert crew.reports("leader") == [h for h in HANDLES if h != "leader"]


def test_prompt_says_whom_a_bot_reports_to_and_who_reports_to_it(workspace: Path) -> None:
    set_supervisor(workspace, crew_of(workspace), "auditor", "coder")
    crew = crew_of(workspace)
    coder = system_prompt(crew.bots["coder"], crew, "general", "open", list(crew.bots))
    assert "You report to @leader (Blackbeard)" in coder and "@auditor (Sharp-Eye Meg" in coder
    auditor = system_prompt(crew.bots["auditor"], crew, "general", "open", list(crew.bots))
    assert "You report to @coder (Ironhook)" in auditor


def test_a_coordinator_consults_only_those_below_it(workspace: Path) -> None:
    set_supervisor(workspace, crew_of(workspace), "auditor", "coder")
    crew = crew_of(workspace)
    room = Room(1, "build", "project", {}, 0, 0, members=["coder", "auditor", "researcher"])
    plan = dispatch(tag("please review this", crew), Intent("review", True), room, crew, 8)
    assert plan.bots == ["coder"] and plan.consult == ["auditor"]
    plan = dispatch(tag("research this", crew), Intent("research", True), room, crew, 8)
    assert plan.consult == []  # the researcher does not report to the coder


# --- reading a hire request ---

@pytest.mark.parametrize("text, what", [
    ("hire a researcher who watches industry trends", "researcher who watches industry trends"),
    ("I'd like to hire a researcher who monitors industry trends", "researcher who monitors industry trends"),
    ("@leader please hire an engineer to run our servers", "engineer to run our servers"),
    ("Can you recruit someone who writes our newsletter?", "someone who writes our newsletter?"),
    ("what does it cost to hire a lawyer?", ""),
    ("I hired a plumber yesterday", ""),
    ("hire", ""),
])
def test_hire_request(text: str, what: str) -> None:
    assert hire_request(text) == what


@pytest.mark.parametrize("text, answer", [
    ("yes", "agree"), ("Yes, hire them!", "agree"), ("sounds good", "agree"), ("@leader aye", "agree"),
    ("no", "decline"), ("cancel that", "decline"), ("never mind", "decline"),
    ("yes but call her Sandy", ""), ("what would she cost?", ""), ("maybe", ""),
])
def test_reply_to_proposal(text: str, answer: str) -> None:
    assert reply_to_proposal(text) == answer


def test_split_request_reads_several_hires() -> None:
    assert split_request("researcher who monitors industry trends, and an engineer who manages our "
                         "infrastructure.") == [("researcher", "monitors industry trends"),
                                                ("engineer", "manages our infrastructure")]
    assert split_request("good designer") == [("designer", "")]


# --- drafting in the team's style ---

@pytest.mark.parametrize("team", ["pirate_crew", "space_crew", "rock_band", "executive_suite", "swat_team",
                                  "feral_clowder"])
def test_each_team_names_its_hires_in_its_own_style(tmp_path: Path, team: str) -> None:
    crew = install_team(tmp_path, team)
    style = team_style(team)
    candidate = draft(crew, "researcher", "watches industry trends")
    assert (candidate.handle, candidate.name) == style.names[0]
    assert (candidate.title, candidate.emoji) == style.titles["researcher"]
    assert crew.team_name in candidate.soul and "watches industry trends" in candidate.role
    assert set(style.titles) == set(role_templates())  # every role template has a title in every team


def test_draft_takes_defaults_from_the_role_template(workspace: Path) -> None:
    templates = role_templates()
    engineer = draft(crew_of(workspace), "engineer", "manages our infrastructure")
    assert engineer.template == "coder" and engineer.tools == templates["coder"].tools
    assert (engineer.tier, engineer.daily_limit_usd) == ("coding", 2.0)
    odd = draft(crew_of(workspace), "accountant", "keeps the books")
    assert odd.template == "assistant"
    newsletter = draft(crew_of(workspace), *split_request("someone who writes our newsletter?")[0])
    assert (newsletter.template, newsletter.role) == ("social", "Community manager who writes our newsletter")


def test_draft_skips_names_in_use_and_takes_refinements(workspace: Path) -> None:
    first = hire(workspace, "researcher", "watches trends")
    second = draft(crew_of(workspace), "researcher", "watches prices")
    assert second.handle != first
    refined = draft(crew_of(workspace), "analyst", name="Dread Pirate Nell", supervisor="researcher", tier="medium")
    assert (refined.handle, refined.supervisor, refined.tier) == ("nell", "researcher", "medium")
    with pytest.raises(CrewError, match="unknown tier"):
        draft(crew_of(workspace), "analyst", tier="cosmic")
    with pytest.raises(CrewError, match="already taken"):
        draft(crew_of(workspace), "analyst", name="Compass Kate")  # the researcher's name
    with pytest.raises(CrewError, match="already taken"):
        draft(crew_of(workspace), "analyst", handle="ironhook")  # the coder answers to it
    with pytest.raises(CrewError, match="say what the new member is"):
        draft(crew_of(workspace), "  ")


@pytest.mark.parametrize("handle", ["../x", "x/../../etc", "Bob", "a", "-x", "ünïcode", "nаme", "x" * 30,
                                    "all", "user", "with space", "x\n"])
def test_bad_or_tricky_handles_are_refused(handle: str) -> None:
    with pytest.raises(CrewError):
        check_handle(handle)


@pytest.mark.parametrize("name", ["🦜🦜", "Evil\u202eGnidoc", "Zero\u200bWidth", "Two\nLines", "x" * 41])
def test_bad_names_are_refused(workspace: Path, name: str) -> None:
    with pytest.raises(CrewError, match="name"):
        draft(crew_of(workspace), "analyst", name=name, handle="fresh")


def test_a_hire_is_written_and_loaded(workspace: Path) -> None:
    handle = hire(workspace, "researcher", "watches industry trends")
    crew = crew_of(workspace)
    bot = crew.bots[handle]
    assert bot.supervisor == "leader" and bot.tier == "simple" and "web_fetch" in bot.tools
    assert "watches industry trends" in bot.role_card and bot.soul.startswith("## Personality")
    assert tag(f"@{handle} hello", crew).bots == [handle]


def test_crew_refresh_sees_a_hire_made_elsewhere(workspace: Path) -> None:
    crew = crew_of(workspace)
    assert crew.refresh() is False
    handle = hire(workspace, "designer")
    assert crew.refresh() is True and handle in crew.bots


def test_a_hire_without_its_role_card_is_not_loaded(workspace: Path) -> None:
    (workspace / "crew" / "bots" / "halfway").mkdir()
    (workspace / "crew" / "bots" / "..evil").mkdir()
    assert set(crew_of(workspace).bots) == set(HANDLES)


def test_caps_refuse_with_a_clear_sentence(workspace: Path) -> None:
    crew = crew_of(workspace)
    check_caps(crew, max_size=7, max_per_day=1, hired_today=0, adding=1)
    with pytest.raises(CrewError, match=r"The crew is full: 6 of 6 members \(crew.maxSize\)"):
        check_caps(crew, max_size=6, max_per_day=3, hired_today=0, adding=1)
    with pytest.raises(CrewError, match=r"at most 2 a day \(crew.maxHiresPerDay\)"):
        check_caps(crew, max_size=12, max_per_day=2, hired_today=2, adding=1)


# --- bot files ---

CARD = """---
handle: scout
name: Sea Scout
emoji: 🐚
role: Trend scout
template: researcher
supervisor: researcher
---
## Personality
Curious and patient.

## Domain
Trends.
"""


def test_bot_file_makes_a_bot(workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "scout.md"
    path.write_text(CARD, encoding="utf-8")
    candidate = parse_bot_file(path, crew_of(workspace))
    write_bot(workspace, candidate)
    bot = crew_of(workspace).bots["scout"]
    assert (bot.supervisor, bot.role, bot.emoji) == ("researcher", "Trend scout", "🐚")
    assert bot.soul.strip() == "## Personality\nCurious and patient." and bot.role_card == "## Domain\nTrends."
    assert bot.tools == role_templates()["researcher"].tools


@pytest.mark.parametrize("text, error", [
    ("just a body\n", "no frontmatter"),
    ("---\nname: X\n---\n", "lacks handle"),
    ("---\nhandle: ../x\nname: X\n---\n", "invalid handle"),
    ("---\nhandle: coder\nname: X\n---\n", "already taken"),
    ("---\nhandle: scout\nname: Ironhook\n---\n", "already taken"),
    ("---\nhandle: scout\nname: X\nsupervisor: scout\n---\n", "itself"),
    ("---\nhandle: scout\nname: X\nsupervisor: ghost\n---\n", "no active bot"),
    ("---\nhandle: scout\nname: X\ntemplate: wizard\n---\n", "unknown template"),
    ("---\nhandle: scout\nname: X\ntools: read_file, summon\n---\n", "unknown tool"),
    ("---\nhandle: scout\nname: X\ndailyLimitUsd: lots\n---\n", "number of dollars"),
])
def test_bad_bot_files_are_refused_with_the_reason(workspace: Path, tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CrewError, match=error):
        parse_bot_file(path, crew_of(workspace))
    assert set(crew_of(workspace).bots) == set(HANDLES)


def test_unreadable_bot_files(workspace: Path, tmp_path: Path) -> None:
    binary = tmp_path / "bin.md"
    binary.write_bytes(b"---\nhandle: x\xff\n---\n")
    with pytest.raises(CrewError, match="not UTF-8"):
        parse_bot_file(binary, crew_of(workspace))
    with pytest.raises(CrewError, match="cannot read"):
        parse_bot_file(tmp_path / "missing.md", crew_of(workspace))


# --- retiring ---

def test_retire_keeps_the_files_moves_the_reports_and_stops_answering(workspace: Path) -> None:
    set_supervisor(workspace, crew_of(workspace), "auditor", "coder")
    moved = retire_bot(workspace, crew_of(workspace), "coder")
    crew = crew_of(workspace)
    assert moved == ["auditor"] and crew.bots["auditor"].supervisor == "leader"
    assert "coder" not in crew.bots and crew.retired["coder"].name == "Ironhook"
    assert (workspace / "crew" / "bots" / "coder" / "SOUL.md").exists()
    tags = tag("@coder fix this", crew)
    assert tags.bots == [] and tags.retired == ["coder"]
    retired = next(n for _, n in flatten(org_tree(crew, Config())) if n.handle == "coder")
    assert retired.retired
    with pytest.raises(CrewError, match="already retired"):
        retire_bot(workspace, crew, "coder")
    with pytest.raises(CrewError, match="cannot retire"):
        retire_bot(workspace, crew, "leader")


def test_team_switch_keeps_hired_bots(workspace: Path) -> None:
    handle = hire(workspace, "designer")
    crew = install_team(workspace, "space_crew")
    assert handle in crew.bots and crew.bots["leader"].name == "Vega Orion"


def test_doctor_reports_a_repaired_org(workspace: Path) -> None:
    from nanofolks.doctor import crew as crew_check

    config = Config(workspace=str(workspace))
    assert crew_check(config).status == "OK"
    set_field(workspace / "crew" / "roles" / "coder.md", "supervisor", "ghost")
    check = crew_check(config)
    assert check.status == "WARN" and "@coder's supervisor @ghost is not an active bot" in check.detail
