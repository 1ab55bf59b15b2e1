"""Work log entries from a real turn (the real litellm against the scripted server): a tool run, a file
written, a task completed; read back by `nanofolks worklog` and by a bot through the work_log tool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.services import Services
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM


@pytest.fixture
def services(crew_home: Path) -> Iterator[Services]:
    services = Services.open()
    yield services
    services.close()


async def test_a_tool_run_and_a_completed_task_are_logged_and_read_back(services: Services, crew_home: Path,
                                                                         llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="coder", contains="save the plan", has_tool_result=False, times=1,
             tool_calls=[{"name": "write_file", "arguments": {"path": "notes/plan.md", "content": "# Plan"}}]),
        Rule(handle="coder", contains="save the plan", has_tool_result=True, reply="Saved."),
        Rule(handle="coder", contains="close it", has_tool_result=False, times=1,
             tool_calls=[{"name": "room_task", "arguments": {"action": "create", "title": "Chart the reef"}}]),
        Rule(handle="coder", contains="close it", has_tool_result=True, times=1,
             tool_calls=[{"name": "room_task", "arguments": {"action": "status", "number": 1, "status": "done"}}]),
        Rule(handle="coder", contains="close it", has_tool_result=True, reply="Done and closed."),
        Rule(handle="coder", contains="missing file", has_tool_result=False, times=1,
             tool_calls=[{"name": "read_file", "arguments": {"path": "nope.md"}}]),
        Rule(handle="coder", contains="missing file", has_tool_result=True, reply="No such file."),
        Rule(handle="leader", contains="where were we", has_tool_result=False, times=1,
             tool_calls=[{"name": "work_log", "arguments": {"limit": 10}}]),
        Rule(handle="leader", contains="where were we", has_tool_result=True, reply="{tool_result}"),
    )
    room = services.rooms.general()
    for text in ("@coder save the plan", "@coder make a task and close it", "@coder read the missing file"):
        await services.pipeline.handle(room, text)

    listed = run_cli("worklog", "list", "--json", home=crew_home)
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [(e["kind"], e["bot"], e["ok"]) for e in entries] == [
        ("file", "coder", True), ("tool", "coder", True), ("task", "coder", True), ("tool", "coder", True),
        ("tool", "coder", False)]
    assert entries[0]["summary"] == "wrote notes/plan.md" and entries[0]["artifacts"] == ["file:notes/plan.md"]
    assert entries[2]["summary"] == "completed task #1: Chart the reef" and entries[2]["artifacts"] == ["task:#1"]
    assert entries[4]["detail"].startswith("error: no file 'nope.md'")
    assert all(e["room"] == "general" for e in entries)

    found = json.loads(run_cli("worklog", "search", "reef", "--json", home=crew_home).stdout)
    assert "completed task #1: Chart the reef" in [e["summary"] for e in found]
    assert len(found) == 3 and all("reef" in (e["summary"] + e["detail"]).lower() for e in found)
    out = crew_home / "log.csv"
    exported = run_cli("worklog", "export", "--format", "csv", "--out", str(out), home=crew_home)
    assert exported.returncode == 0, exported.stderr
    assert len(out.read_text().splitlines()) == 6 and "file:notes/plan.md" in out.read_text()
    bad = run_cli("worklog", "export", "--out", str(crew_home / "no" / "dir" / "x.md"), home=crew_home)
    assert bad.returncode == 1 and "cannot write" in bad.stderr

    answer = await services.pipeline.handle(room, "@leader where were we?")
    text = answer.markdown()
    assert "@coder file: wrote notes/plan.md [file:notes/plan.md]" in text
    assert "completed task #1: Chart the reef" in text and "(failed)" in text
