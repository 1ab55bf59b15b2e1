"""`nanofolks routines` as a user types it (the real litellm against the scripted server, no gateway),
and a routine made in chat by the leader's `routine` tool."""

from __future__ import annotations

import json
from pathlib import Path

from nanofolks.routines.service import RoutineService
from nanofolks.services import Services
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM


def ok(home: Path, *args: str) -> str:
    done = run_cli(*args, home=home, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_routines_from_the_cli_without_a_gateway(crew_home: Path, llm_server: ScriptedLLM) -> None:
    bad = run_cli("routines", "add", "--name", "x", "--message", "m", "--schedule", "0 25 * * *", home=crew_home)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "invalid cron expression '0 25 * * *'" in bad.stderr
    both = run_cli("routines", "add", "--name", "x", "--message", "m", "--every", "1h", "--at", "09:00", home=crew_home)
    assert both.returncode == 1 and "exactly one of" in both.stderr
    ok(crew_home, "room", "map", "general", "telegram:42")
    assert "routine 1 'water' in #general: every 2h" in ok(
        crew_home, "routines", "add", "--name", "water", "--message", "Remind me to drink water", "--every", "2h")
    ok(crew_home, "routines", "add", "--name", "digest", "--message", "Summarise", "--at", "08:30", "--tz", "Asia/Tokyo")
    listed = json.loads(ok(crew_home, "routines", "list", "--json"))
    assert [(r["name"], r["schedule"], r["tz"]) for r in listed][1] == ("digest", "30 8 * * *", "Asia/Tokyo")
    assert listed[1]["next"].endswith(("08:30 JST",))

    llm_server.add(Rule(contains="drink water", reply="Drink some water, matey!"))
    ran = json.loads(ok(crew_home, "routines", "run", "1", "--json"))
    assert ran["answer"] == "Drink some water, matey!"
    assert ran["delivered_to"] == [] and "no mapped chat reachable" in ran["note"]  # no gateway ever ran here
    [run] = json.loads(ok(crew_home, "routines", "history", "1", "--json"))
    assert (run["trigger"], run["status"], run["answer"]) == ("manual", "answered", "Drink some water, matey!")

    ok(crew_home, "routines", "disable", "2")
    assert [r["enabled"] for r in json.loads(ok(crew_home, "routines", "list", "--json"))] == [True, False]
    ok(crew_home, "routines", "remove", "2")
    gone = run_cli("routines", "history", "2", home=crew_home)
    assert gone.returncode == 1 and "no routine with id 2" in gone.stderr


async def test_the_leader_makes_a_routine_in_chat_for_the_chats_room(crew_home: Path,
                                                                     llm_server: ScriptedLLM) -> None:
    llm_server.add(
        Rule(handle="leader", has_tool_result=False, times=1, tool_calls=[{"name": "routine", "arguments": {
            "action": "create", "name": "stretch", "message": "Remind the user to stretch.",
            "schedule": "0 9 * * 1-5"}}]),
        Rule(handle="leader", has_tool_result=True, reply="Done: {tool_result}"),
    )
    services = Services.open()
    try:
        services.rooms.create("health", "open")
        room = services.rooms.get("health")
        answer = await services.pipeline.handle(room, "remind me every weekday at 9 to stretch",
                                                platform="telegram", chat="telegram:555")
        assert "created routine 1 'stretch' in #health: 0 9 * * 1-5, next run" in answer.markdown()
        [made] = RoutineService.of(services).repo.list()
        assert (made.room, made.created_by, made.message) == ("health", "@leader", "Remind the user to stretch.")
        assert services.rooms.repo.room_for_chat("telegram", "555").name == "health"  # answers come back here
    finally:
        services.close()
