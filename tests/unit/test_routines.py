"""Routines, the scheduler's missed-run policy, heartbeats, activity and work logs over a real store and
pipeline, with a model that answers at once and counts its calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nanofolks.config.schema import BotSettings, Config, HeartbeatConfig
from nanofolks.crew.crew import install_team
from nanofolks.llm.client import LLM, ChatResult
from nanofolks.routines.activity import Activity
from nanofolks.routines.delivery import Target
from nanofolks.routines.heartbeat import Heartbeats, cheapest_model
from nanofolks.routines.schedule import (
    Schedule,
    ScheduleError,
    from_options,
    in_hours,
    next_opening,
    parse_duration,
    parse_hours,
)
from nanofolks.routines.scheduler import Scheduler
from nanofolks.routines.service import RoutineError, RoutineService
from nanofolks.routines.worklog import export, search, tool_entry
from nanofolks.services import Services
from nanofolks.store.db import Database
from nanofolks.store.outbox import OutboxRepo
from nanofolks.store.routines import RoutineRepo
from nanofolks.store.usage import Usage
from nanofolks.store.worklog import WorkLogRepo

UTC = dt.UTC


def ts(text: str, tz: str = "UTC") -> float:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


# --- schedules ------------------------------------------------------------------------------------------


def test_cron_next_and_newest_slot() -> None:
    weekdays = Schedule("0 9 * * 1-5", "UTC")
    friday_noon = ts("2026-11-27T12:00:00")
    assert weekdays.next_after(friday_noon) == ts("2026-11-30T09:00:00")  # Monday: the weekend is skipped
    assert weekdays.newest_at_or_before(friday_noon) == ts("2026-11-27T09:00:00")
    on_the_slot = ts("2026-11-27T09:00:00")
    assert weekdays.newest_at_or_before(on_the_slot) == on_the_slot  # a due time counts as come
    assert weekdays.next_after(on_the_slot) == ts("2026-11-30T09:00:00")  # strictly after


def test_cron_follows_the_zone_across_daylight_saving() -> None:
    daily = Schedule("0 9 * * *", "Europe/Paris")
    before = daily.next_after(ts("2026-03-28T08:00:00", "Europe/Paris"))  # Sat 09:00 CET
    after = daily.next_after(before)
    assert dt.datetime.fromtimestamp(after, dt.UTC).hour == 7  # 09:00 CEST
    assert after - before == 23 * 3600  # the night the clocks went forward was an hour short


def test_intervals_count_from_creation() -> None:
    every = Schedule("every 30m", "", anchor=1000.0)
    assert every.newest_at_or_before(1000.0 + 1799) is None  # the first run is one interval after creation
    assert every.newest_at_or_before(1000.0 + 3600 + 5) == 1000.0 + 3600
    assert every.next_after(1000.0 + 3600) == 1000.0 + 5400


@pytest.mark.parametrize(("text", "problem"), [
    ("61 * * * *", "out of range"),
    ("* * *", "it needs 5 fields"),
    ("0 9 * * * *", "it needs 5 fields"),
    ("every 0s", "too short"),
    ("every soon", "invalid duration"),
])
def test_bad_schedules_get_one_clear_line(text: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem) as caught:
        Schedule(text, "UTC")
    assert "\n" not in str(caught.value)


def test_friendly_forms() -> None:
    assert from_options(None, "30m", None) == "every 30m"
    assert from_options(None, None, "09:05") == "5 9 * * *"
    assert from_options("0  9 * * 1-5", None, None) == "0 9 * * 1-5"
    with pytest.raises(ScheduleError, match="exactly one"):
        from_options("* * * * *", "5m", None)
    with pytest.raises(ScheduleError, match="HH:MM"):
        from_options(None, None, "25:00")
    assert parse_duration("90s") == 90 and parse_duration("1.5h") == 5400 and parse_duration("2") == 120


def test_active_hours() -> None:
    day = parse_hours("08:00-22:00")
    assert in_hours(ts("2026-11-27T08:00:00"), day, "UTC") and not in_hours(ts("2026-11-27T22:00:00"), day, "UTC")
    assert next_opening(ts("2026-11-27T23:10:00"), day, "UTC") == ts("2026-11-28T08:00:00")
    assert next_opening(ts("2026-11-27T07:00:00"), day, "UTC") == ts("2026-11-27T08:00:00")
    night = parse_hours("22:00-06:00")
    assert in_hours(ts("2026-11-27T23:00:00"), night, "UTC") and in_hours(ts("2026-11-27T05:59:00"), night, "UTC")
    assert parse_hours("") is None
    with pytest.raises(ScheduleError):
        parse_hours("8-22")


# --- a crew over a real store, with a counting instant model --------------------------------------------


class Counting(LLM):
    """Answers at once ("<bot> here", or `reply`), records usage like a real call, keeps every call."""

    reply: str | None = None

    def __init__(self, config: Config, usage: Any) -> None:
        super().__init__(config, usage)
        self.calls: list[dict[str, Any]] = []

    async def chat(self, messages, *, model, bot="", room_id=None, **_):  # noqa: ANN001, ANN003
        self.calls.append({"model": model, "bot": bot, "messages": messages})
        await self._record(Usage(model=model, bot=bot, room_id=room_id, prompt_tokens=5, completion_tokens=2))
        return ChatResult(text=self.reply or f"{bot} here", model=model)


@pytest.fixture
def services(tmp_path: Path, db: Database) -> Iterator[Services]:  # on each backend (tests/conftest.py)
    config = Config()
    config.workspace = str(tmp_path / "ws")
    config.agents.defaults.model = "openai/big-model"
    config.orchestrator.llm_intent = False
    config.memory.enabled = False
    config.routines.timezone = "UTC"
    install_team(tmp_path / "ws", "pirate_crew")
    services = Services(config=config, db=db)
    services.__dict__["llm"] = Counting(config, services.usage)
    services.rooms.general()
    yield services
    services.close()


def split_in_two(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2:]]


TARGETS = {"telegram": Target("bot1", split_in_two)}


async def test_a_run_is_answered_in_its_room_and_queued_once_per_mapped_chat(services: Services) -> None:
    routines = RoutineService.of(services)
    services.rooms.create("ops", "project")
    services.rooms.map_chat("ops", "telegram:42")
    services.rooms.map_chat("ops", "discord:7")  # a platform this gateway does not run
    routine = routines.add("stretch", "Remind me to stretch", "0 9 * * 1-5", "ops", bot="coder")
    outcome = await routines.run(routine, 1000.0, "schedule", TARGETS)
    assert outcome is not None and outcome.answer == "coder here"
    assert outcome.delivered_to == ["telegram:42"]
    run = routines.repo.run(outcome.run.id)
    assert run.status == "delivered" and "discord:7" in run.error
    rows = [OutboxRepo(services.db).get(f"routine-run:{run.id}:telegram:42:{i}") for i in range(2)]
    assert "".join(r.text for r in rows) == "coder here" and {r.account for r in rows} == {"bot1"}
    # the room holds the routine's message and the answer, like any turn
    history = services.messages.by_turn(f"routine-run-{run.id}")
    assert [(m.role, m.content) for m in history] == [("user", "@coder Remind me to stretch"),
                                                      ("assistant", "coder here")]
    assert history[0].sender == "routine:stretch"
    # the same slot never runs twice, and delivering again queues nothing
    assert await routines.run(routine, 1000.0, "schedule", TARGETS) is None
    assert routines.deliver(run, routine, "again", TARGETS) == ["telegram:42"]
    assert services.db.query_one("SELECT COUNT(*) FROM outbox")[0] == 2
    [logged] = [e for e in WorkLogRepo(services.db).list() if e.kind == "routine"]
    assert logged.summary == "routine 'stretch' ran" and f"run:{run.id}" in logged.artifacts


async def test_a_crash_before_the_answer_reruns_the_slot_with_one_copy_of_the_message(services: Services) -> None:
    routines = RoutineService.of(services)
    services.rooms.map_chat("general", "telegram:42")
    routine = routines.add("news", "What is new?", "every 1h")
    run = routines.repo.claim(routine.id, 5000.0, "schedule")  # claimed, then the process died
    scheduler = Scheduler(services, lambda: TARGETS)
    await scheduler._resume()
    await asyncio.wait(scheduler._jobs)
    assert routines.repo.run(run.id).status == "delivered"
    users = [m for m in services.messages.by_turn(f"routine-run-{run.id}") if m.role == "user"]
    assert len(users) == 1 and len(services.llm.calls) == 1


async def test_an_answer_waits_for_a_reachable_chat_and_is_delivered_at_start(services: Services) -> None:
    routines = RoutineService.of(services)
    services.rooms.map_chat("general", "telegram:42")
    routine = routines.add("news", "What is new?", "every 1h")
    outcome = await routines.run(routine, time.time(), "manual", {})  # `routines run`, no gateway ever ran
    assert outcome.delivered_to == [] and routines.repo.run(outcome.run.id).status == "answered"
    await Scheduler(services, lambda: TARGETS)._resume()  # the next gateway start
    assert routines.repo.run(outcome.run.id).status == "delivered"
    assert OutboxRepo(services.db).get(f"routine-run:{outcome.run.id}:telegram:42:0") is not None
    assert len(services.llm.calls) == 1  # delivered, not asked again


async def test_missed_runs_within_the_grace_run_once_older_ones_are_skipped(services: Services) -> None:
    routines = RoutineService.of(services)
    routine = routines.add("hourly", "Status?", "0 * * * *")
    repo = RoutineRepo(services.db)
    created = ts("2026-11-27T08:30:00")
    with services.db.write() as conn:
        conn.execute("UPDATE routines SET created_at = ? WHERE id = ?", (created, routine.id))
    routine = repo.get(routine.id)
    scheduler = Scheduler(services, lambda: TARGETS)

    # down from 08:30 until 11:40: the 11:00 slot is 40 min late, beyond the 15 min grace
    nxt = await scheduler._routine(routine, repo.last_dues().get(routine.id), ts("2026-11-27T11:40:00"))
    assert nxt == ts("2026-11-27T12:00:00")
    [skipped] = repo.runs(routine.id)
    assert skipped.status == "skipped" and skipped.due_at == ts("2026-11-27T11:00:00")
    assert "beyond the 15m grace" in skipped.error
    await scheduler._routine(routine, repo.last_dues().get(routine.id), ts("2026-11-27T11:50:00"))  # the skipped slot stays skipped
    assert len(repo.runs(routine.id)) == 1 and services.llm.calls == []

    # down again from 11:50 until 12:05: the 12:00 slot is 5 min late, within the grace: it runs once
    await scheduler._routine(routine, repo.last_dues().get(routine.id), ts("2026-11-27T12:05:00"))
    await scheduler._routine(routine, repo.last_dues().get(routine.id), ts("2026-11-27T12:06:00"))
    await asyncio.wait(scheduler._jobs)
    runs = repo.runs(routine.id)
    assert [(r.trigger, r.status) for r in runs] == [("missed", "delivered"), ("schedule", "skipped")]
    assert len(services.llm.calls) == 1


def test_routine_errors_are_one_line_and_write_nothing(services: Services) -> None:
    routines = RoutineService.of(services)
    for args, problem in [(("x", "m", "61 * * * *"), "out of range"), (("x", "", "every 1h"), "message"),
                          (("x", "m", "every 1h", "nowhere"), "no room"), (("", "m", "every 1h"), "name")]:
        with pytest.raises(Exception, match=problem):
            routines.add(*args)
    with pytest.raises(RoutineError, match="no bot named"):
        routines.add("x", "m", "every 1h", bot="@ghost")
    with pytest.raises(RoutineError, match="unknown time zone"):
        routines.add("x", "m", "every 1h", tz="Mars/Base")
    assert routines.repo.list() == []


# --- heartbeats -------------------------------------------------------------------------------------------


def beating(services: Services, *handles: str) -> Heartbeats:
    for handle in handles:
        services.config.agents.bots[handle] = BotSettings(model="openai/cheap-model",
                                                          heartbeat=HeartbeatConfig(enabled=True, every="1s"))
    return Heartbeats(services)


async def test_a_heartbeat_with_nothing_to_do_makes_no_model_call(services: Services) -> None:
    beats = beating(services, "leader", "coder")
    for _ in range(3):
        assert await beats.beat("leader", TARGETS) == 0 and await beats.beat("coder", TARGETS) == 0
    assert services.llm.calls == [] and services.usage.totals()["calls"] == 0


async def test_a_due_task_makes_one_call_on_the_cheapest_tier_once(services: Services) -> None:
    beats = beating(services, "coder")
    services.rooms.map_chat("general", "telegram:42")
    today = dt.datetime.now(UTC).date().isoformat()
    services.tasks.add(services.rooms.general(), "ship the release", "coder", due=today)
    services.llm.reply = "Reminder: the release is due today."
    assert await beats.beat("coder", TARGETS) == 1
    [call] = services.llm.calls
    assert call["model"] == cheapest_model(services.llm, "coder") == "openai/cheap-model"
    assert "ship the release" in call["messages"][-1]["content"] and "due today" in call["messages"][-1]["content"]
    assert services.usage.totals()["calls"] == 1  # counted in usage, which `metrics` reads
    said = services.messages.recent(services.rooms.general().id, 5)[-1]
    assert (said.author, said.content) == ("coder", "Reminder: the release is due today.")
    assert services.db.query_one("SELECT COUNT(*) FROM outbox WHERE chat_id = '42'")[0] == 2
    assert [e.kind for e in WorkLogRepo(services.db).list()] == ["heartbeat"]
    for _ in range(3):  # already acted on: no more calls
        assert await beats.beat("coder", TARGETS) == 0
    assert len(services.llm.calls) == 1


async def test_a_heartbeat_that_has_nothing_to_say_stays_quiet(services: Services) -> None:
    beats = beating(services, "leader")
    (Path(services.config.workspace) / "HEARTBEAT.md").write_text("- [x] done already\n- [ ] water the plants\n")
    services.llm.reply = "NOTHING"
    assert await beats.beat("leader", TARGETS) == 1
    assert "water the plants" in services.llm.calls[0]["messages"][-1]["content"]
    assert "done already" not in services.llm.calls[0]["messages"][-1]["content"]
    assert services.messages.count(services.rooms.general().id) == 0


def test_unanswered_mentions_are_found(services: Services) -> None:
    from nanofolks.store.messages import Message

    beats = beating(services, "coder")
    room = services.rooms.general()
    old = time.time() - 600
    services.messages.add(Message(room.id, "user", "user", "@coder look at this", turn_id="t1", created_at=old))
    services.messages.add(Message(room.id, "user", "user", "@coder and this", turn_id="t2", created_at=old))
    services.messages.add(Message(room.id, "coder", "assistant", "done", turn_id="t2", created_at=old))
    services.messages.add(Message(room.id, "user", "user", "@coder just now", turn_id="t3"))  # may still be answered
    found = beats.look("coder")
    assert [f.text for f in found] == ["the user mentioned you and got no answer from you: '@coder look at this'"]


# --- activity -----------------------------------------------------------------------------------------------


async def test_background_work_waits_for_a_live_room_but_not_forever() -> None:
    activity = Activity(live_for=0.3, max_wait=1.0)
    assert await activity.quiet(1) < 0.01  # nobody talked
    activity.touch(1)
    assert activity.live(1) and activity.live() and not activity.live(2)
    waited = await activity.quiet(1)
    assert 0.25 <= waited < 0.9 and not activity.live(1)

    async def chatter() -> None:
        for _ in range(20):
            activity.touch(1)
            await asyncio.sleep(0.1)

    talking = asyncio.create_task(chatter())
    await asyncio.sleep(0)
    waited = await activity.quiet(1)
    assert 0.95 <= waited < 1.5  # the bound: never postponed forever
    talking.cancel()


# --- work logs ------------------------------------------------------------------------------------------------


def test_tool_runs_become_entries_of_their_kind() -> None:
    wrote = tool_entry(1, "coder", "write_file", {"path": "notes/a.md", "content": "x"}, "wrote 1 bytes to notes/a.md",
                       True, "t1")
    assert (wrote.kind, wrote.summary, wrote.artifacts) == ("file", "wrote notes/a.md", ["file:notes/a.md"])
    delegated = tool_entry(1, "leader", "delegate", {"bot": "@coder", "task": "fix it"},
                           "@coder (Ironhook) finished task #3:\n\nfixed", True, "t1")
    assert (delegated.kind, delegated.artifacts) == ("delegation", ["task:#3"])
    failed = tool_entry(1, "coder", "exec", {"command": "ls"}, "error: exec is off", False, "t1")
    assert (failed.kind, failed.ok, failed.detail) == ("tool", False, "error: exec is off")


def test_completed_tasks_are_logged_and_the_log_searches_and_exports(services: Services) -> None:
    room = services.rooms.general()
    services.tasks.add(room, "Polish the anchor", "coder")
    services.tasks.set_status(room, 1, "in_progress", actor="coder")
    services.tasks.set_status(room, 1, "done", actor="coder", reason="shiny now")
    services.tasks.set_status(room, 1, "done", actor="coder")  # already done: no second entry
    repo = WorkLogRepo(services.db)
    repo.add(tool_entry(room.id, "researcher", "web_fetch", {"url": "https://x.test"}, "tides table", True, "t9"))
    entries = repo.list()
    assert [(e.kind, e.bot, e.summary) for e in entries] == [
        ("task", "coder", "completed task #1: Polish the anchor"), ("tool", "researcher", 'web_fetch {"url": "https://x.test"}')]
    assert entries[0].artifacts == ["task:#1"] and entries[0].detail == "shiny now" and entries[0].room == "general"
    assert [e.kind for e in search(repo, "the anchors")] == ["task"]  # stemmed, stop words dropped
    assert search(repo, "tides")[0].bot == "researcher" and search(repo, "the of") == []
    assert repo.list(bot="coder")[0].kind == "task" and repo.list(since=time.time() + 60) == []
    rows = json.loads(export(entries, "json"))
    assert rows[0]["summary"] == "completed task #1: Polish the anchor"
    csv_text = export(entries, "csv")
    assert csv_text.splitlines()[0].startswith("id,at,room,bot,kind,summary") and "task:#1" in csv_text
    assert "- " in export(entries, "md") and "@coder task: completed task #1" in export(entries, "md")
    with pytest.raises(ValueError, match="unknown format"):
        export(entries, "xml")


def test_memory_consolidation_waits_for_a_live_conversation_but_not_forever(tmp_path: Path) -> None:
    from nanofolks.memory.service import MemoryService
    from nanofolks.store.db import Database
    from tests.fakes.embedder import HashEmbedder

    memory = MemoryService(Config(), Database(tmp_path / "m.db"), embedder=HashEmbedder())
    memory.state.set("consolidated_at", "1000")  # long overdue
    live = [True]
    memory.defer_while(lambda: live[0], at_most=0.3)
    memory._maintain(time.time())
    assert memory.state.get("consolidated_at") == "1000"  # the user is talking: later
    time.sleep(0.35)
    memory._maintain(time.time())
    assert memory.state.get("consolidated_at") != "1000"  # the bound: it ran anyway
    memory.state.set("consolidated_at", "1000")
    live[0] = False
    memory._maintain(time.time())
    assert memory.state.get("consolidated_at") != "1000"  # quiet: at once
    memory.close()
