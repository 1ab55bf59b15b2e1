"""The agent loop end to end: the real litellm against the scripted OpenAI-compatible server, the real
pipeline, database and workspace. Native tool calls, text tool calls, limits and delegation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.config.schema import BotSettings
from nanofolks.services import Services
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM, last_user_message, system_prompt


@pytest.fixture
def services(crew_home: Path) -> Iterator[Services]:
    services = Services.open()
    yield services
    services.close()


async def ask(services: Services, text: str, on_token=None):  # noqa: ANN001, ANN201
    return await services.pipeline.handle(services.rooms.general(), text, on_token=on_token)


def tools_offered(request: dict) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


def turn_kinds(services: Services, turn_id: str) -> list[tuple[str, str, str]]:
    return [(m.kind, m.role, m.author) for m in services.messages.by_turn(turn_id)]


def write_call(path: str, content: str) -> list[dict]:
    return [{"name": "write_file", "arguments": {"path": path, "content": content}}]


async def test_coder_writes_a_file_with_a_native_call(services: Services, llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="coder", has_tool_result=False, tool_calls=write_call("notes/plan.md", "# Plan"), times=1),
        Rule(handle="coder", has_tool_result=True, reply="Saved it: {tool_result}"),
    )
    answer = await ask(services, "@coder save our plan")
    assert answer.markdown() == "Saved it: wrote 6 bytes to notes/plan.md"
    assert (services.workspace / "notes" / "plan.md").read_text() == "# Plan"
    first, second = llm_server.requests
    assert tools_offered(first) == ["read_file", "write_file", "edit_file", "list_dir", "web_fetch", "room_task",
                                    "search_memory", "work_log", "read_skill"]
    assert [m["role"] for m in second["messages"][-2:]] == ["assistant", "tool"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "write_file"
    # The call and its result are in the room's history, in order, but not as chat.
    assert turn_kinds(services, answer.turn_id) == [
        ("chat", "user", "user"), ("tool_call", "assistant", "coder"), ("tool_result", "tool", "coder"),
        ("chat", "assistant", "coder"),
    ]
    call, result = services.messages.by_turn(answer.turn_id)[1:3]
    assert json.loads(call.content) == {"tool": "write_file", "arguments": {"path": "notes/plan.md",
                                                                            "content": "# Plan"}}
    assert result.meta["ok"] is True and result.meta["call_id"] == call.meta["call_id"]
    # The next turn's prompt carries the chat, not the tool traffic.
    await ask(services, "@coder thanks")
    assert all(m["role"] != "tool" and "tool_calls" not in m for m in llm_server.requests[-1]["messages"])


async def test_a_path_escape_is_refused_and_the_model_sees_why(services: Services, llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="coder", has_tool_result=False, tool_calls=write_call("../escape.txt", "boo")),
        Rule(handle="coder", has_tool_result=True, reply="Could not: {tool_result}"),
    )
    answer = await ask(services, "@coder write outside")
    assert not (services.workspace.parent / "escape.txt").exists()
    tool_message = llm_server.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"].startswith("error: '../escape.txt' is outside the crew's workspace")
    assert answer.markdown().startswith("Could not: error:")
    assert services.messages.by_turn(answer.turn_id)[2].meta["ok"] is False


async def test_a_malformed_text_call_is_corrected(services: Services, llm_server: ScriptedLLM) -> None:
    services.config.agents.bots["coder"] = BotSettings(tool_mode="text")
    good = '```json\n{"tool": "write_file", "arguments": {"path": "a.txt", "content": "hi",}}\n```'
    llm_server.add(
        Rule(handle="coder", has_tool_result=True, reply="Done, the file is written."),
        Rule(handle="coder", contains="could not be read", reply="Sorry! " + good),
        Rule(handle="coder", reply='On it.\n```json\n{"tool": "write_file", "arguments": {"path": "a.txt"\n```'),
    )
    answer = await ask(services, "@coder write a.txt")
    assert answer.markdown() == "Done, the file is written."
    assert (services.workspace / "a.txt").read_text() == "hi"
    first, second, third = llm_server.requests
    assert all("tools" not in r for r in llm_server.requests)  # text mode: no native tools
    assert '{"tool": "TOOL_NAME", "arguments"' in system_prompt(first["messages"])
    assert "- write_file(path: string, content: string)" in system_prompt(first["messages"])
    assert last_user_message(second["messages"]).startswith("That tool call could not be read (Expecting")
    assert last_user_message(third["messages"]) == "Tool result (write_file):\nwrote 2 bytes to a.txt"
    kinds = [k for k, _, _ in turn_kinds(services, answer.turn_id)]
    assert kinds == ["chat", "tool_call", "tool_result", "chat"]


async def test_after_two_corrections_the_text_is_the_answer(services: Services, llm_server: ScriptedLLM) -> None:
    services.config.agents.bots["coder"] = BotSettings(tool_mode="text")
    llm_server.add(Rule(handle="coder", reply='The plan is ready. {"tool": "write_file", "arguments": {"pa'))
    answer = await ask(services, "@coder do it")
    assert len(llm_server.requests) == 3  # the first try and two corrections
    assert answer.markdown() == "The plan is ready."


async def test_the_iteration_limit_stops_the_loop_and_says_so(services: Services, llm_server: ScriptedLLM) -> None:
    services.config.agents.defaults.max_iterations = 3
    llm_server.add(*[Rule(handle="coder", tool_calls=write_call(f"{n}.txt", n), times=1) for n in "abcd"])
    answer = await ask(services, "@coder write many files")
    assert len(llm_server.requests) == 3
    assert sorted(p.name for p in services.workspace.glob("?.txt")) == ["a.txt", "b.txt", "c.txt"]
    assert answer.parts[0].ok
    assert "I stopped after 3 steps, the most one answer may take" in answer.markdown()
    assert "{" not in answer.markdown()


async def test_an_identical_repeated_call_is_stopped(services: Services, llm_server: ScriptedLLM) -> None:
    services.workspace.joinpath("notes.txt").write_text("ahoy")
    llm_server.add(Rule(handle="coder", reply="Reading.", tool_calls=[{"name": "read_file",
                                                                        "arguments": {"path": "notes.txt"}}]))
    answer = await ask(services, "@coder read the notes")
    assert len(llm_server.requests) == 2
    kinds = [k for k, _, _ in turn_kinds(services, answer.turn_id)]
    assert kinds.count("tool_result") == 1  # the repeat was not run
    assert answer.markdown() == "Reading.\n\n_(I stopped because I was about to repeat the same `read_file` call.)_"


async def test_the_leader_delegates_to_a_specialist(services: Services, llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="leader", has_tool_result=False, tool_calls=[
            {"name": "delegate", "arguments": {"bot": "coder", "task": "Draw the treasure map in map.txt"}}]),
        Rule(handle="coder", reply="Map drawn: X marks the spot."),
        Rule(handle="leader", has_tool_result=True, reply="Crew report. {tool_result}"),
    )
    answer = await ask(services, "Let's get the treasure map sorted")
    assert llm_server.handles_seen() == ["leader", "coder", "leader"]
    assert [p.bot for p in answer.parts] == ["leader"]
    assert "Map drawn: X marks the spot." in answer.markdown()
    assert "finished task #1" in answer.markdown() and '"tool"' not in answer.markdown()
    leader_request, coder_request, _ = llm_server.requests
    assert "delegate" in tools_offered(leader_request)
    assert "delegate" not in tools_offered(coder_request)  # a specialist cannot delegate further
    assert last_user_message(coder_request["messages"]).startswith(
        "[Task from @leader (") and "Draw the treasure map in map.txt" in last_user_message(coder_request["messages"])
    room = services.rooms.general()
    task = services.tasks.get(room, 1)
    assert (task.title, task.owner, task.status) == ("Draw the treasure map in map.txt", "coder", "done")
    assert services.tasks.history(room, 1)[0].actor == "leader"
    assert ("consult", "assistant", "coder") in turn_kinds(services, answer.turn_id)


async def test_the_turn_budget_bounds_a_delegation(services: Services, llm_server: ScriptedLLM) -> None:
    services.config.orchestrator.turn_budget = 2
    llm_server.add(
        Rule(handle="leader", tool_calls=[{"name": "delegate", "arguments": {"bot": "researcher",
                                                                              "task": "Find the reef"}}]),
        Rule(handle="researcher", reply="The reef is north."),
    )
    answer = await ask(services, "Let's get going on the voyage")
    assert llm_server.handles_seen() == ["leader", "researcher"]  # the leader's third call never happened
    text = answer.markdown()
    assert "The reef is north." in text  # the specialist's work still reaches the user
    assert "The turn budget for this message ran out" in text


async def test_exec_is_off_unless_enabled(services: Services, llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="auditor", has_tool_result=False, tool_calls=[{"name": "exec",
                                                                   "arguments": {"command": "touch ran.txt"}}]),
        Rule(handle="auditor", has_tool_result=True, reply="{tool_result}"),
    )
    answer = await ask(services, "@auditor run the checks")
    assert "exec" not in tools_offered(llm_server.requests[0])
    assert answer.markdown().startswith("error: running commands is turned off")
    assert not (services.workspace / "ran.txt").exists()
    services.config.tools.exec_enabled = True
    answer = await ask(services, "@auditor run the checks again")
    assert "exec" in tools_offered(llm_server.requests[2])
    assert answer.markdown() == "exit code 0"
    assert (services.workspace / "ran.txt").exists()


async def test_web_fetch_refuses_loopback_unless_allowed(services: Services, llm_server: ScriptedLLM) -> None:
    url = llm_server.base_url + "/models"  # the scripted server is a tiny web server on 127.0.0.1
    llm_server.add(
        Rule(handle="researcher", has_tool_result=False, tool_calls=[{"name": "web_fetch", "arguments": {"url": url}}]),
        Rule(handle="researcher", has_tool_result=True, reply="Fetched: {tool_result}"),
    )
    refused = await ask(services, "@researcher fetch the model list")
    assert refused.markdown().startswith("Fetched: error: 127.0.0.1 is 127.0.0.1, a loopback")
    services.config.tools.web_fetch_allow_private = True
    fetched = await ask(services, "@researcher fetch it again")
    assert fetched.markdown().startswith(f"Fetched: {url} (HTTP 200, application/json)")
    assert '"id": "fake-model"' in fetched.markdown()


async def test_streamed_text_never_shows_tool_json(services: Services, llm_server: ScriptedLLM) -> None:
    services.config.agents.bots["coder"] = BotSettings(tool_mode="text")
    llm_server.add(
        Rule(handle="coder", has_tool_result=False,
             reply='Let me write it.\n```json\n{"tool": "write_file", "arguments": {"path": "s.txt", "content": "x"}}\n```'),
        Rule(handle="coder", has_tool_result=True, reply="Written to `s.txt`."),
        Rule(handle="researcher", has_tool_result=False, tool_calls=write_call("r.txt", "y")),
        Rule(handle="researcher", has_tool_result=True, reply="Saved r.txt."),
    )
    pieces: list[tuple[str, str]] = []
    answer = await ask(services, "@coder write s.txt", on_token=lambda bot, piece: pieces.append((bot, piece)))
    streamed = "".join(p for _, p in pieces)
    assert streamed == "Let me write it.\n\n\nWritten to `s.txt`."
    assert answer.markdown() == "Written to `s.txt`."
    assert (services.workspace / "s.txt").read_text() == "x"
    # Native calls arrive through the streaming API too (litellm assembles the streamed tool call).
    pieces.clear()
    answer = await ask(services, "@researcher save r.txt", on_token=lambda bot, piece: pieces.append((bot, piece)))
    assert all(r.get("stream") for r in llm_server.requests[-2:])
    assert (services.workspace / "r.txt").read_text() == "y"
    assert "".join(p for _, p in pieces) == "Saved r.txt." == answer.markdown()


async def test_rule_based_consults_still_reach_the_leader(services: Services, llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="researcher", reply="Reef charts are best from the admiralty."),
        Rule(handle="leader", contains="Crew notes", reply="Merged: {user}"),
    )
    answer = await ask(services, "research the best reef charts")
    assert llm_server.handles_seen() == ["researcher", "leader"]
    assert "Reef charts are best from the admiralty." in answer.markdown()


def test_the_cli_shows_the_answer_not_the_tool_traffic(crew_home: Path, llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="coder", has_tool_result=False, reply="Writing.",
             tool_calls=write_call("cli.txt", "from the cli")),
        Rule(handle="coder", has_tool_result=True, reply="Saved `cli.txt` for you."),
    )
    result = run_cli("chat", "-m", "@coder save cli.txt", home=crew_home)
    assert result.returncode == 0, result.stderr
    assert "Saved cli.txt for you." in result.stdout or "Saved `cli.txt` for you." in result.stdout
    assert "write_file" not in result.stdout and '"path"' not in result.stdout
    assert (crew_home / "workspace" / "cli.txt").read_text() == "from the cli"
