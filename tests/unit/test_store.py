"""Storage: migrations, rooms, messages, tasks with event history, compare-and-set under contention."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nanofolks.crew.crew import install_team
from nanofolks.rooms.rooms import RoomError, Rooms, parse_chat_ref, validate_room_name
from nanofolks.rooms.tasks import TaskError, Tasks
from nanofolks.store.db import Database
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import RoomRepo
from nanofolks.store.tasks import TaskRepo


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "nf.db")


@pytest.fixture
def rooms(db: Database, tmp_path: Path) -> Rooms:
    return Rooms(RoomRepo(db), install_team(tmp_path / "ws", "space_crew"))


def test_wal_mode_and_migrations_recorded_once(tmp_path: Path) -> None:
    first = Database(tmp_path / "a.db")
    assert first.query_one("PRAGMA journal_mode")[0] == "wal"
    names = [r[0] for r in first.query("SELECT name FROM _migrations")]
    first.close()
    again = Database(tmp_path / "a.db")
    assert [r[0] for r in again.query("SELECT name FROM _migrations")] == names


def test_general_holds_the_whole_crew(rooms: Rooms) -> None:
    general = rooms.general()
    assert general.type == "open"
    assert sorted(general.members) == sorted(rooms.crew.handles)
    assert rooms.general().id == general.id  # idempotent


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 65, "näme", "has space", "room;drop", ".hidden"])
def test_bad_room_names_rejected_and_nothing_written(rooms: Rooms, bad: str) -> None:
    before = len(rooms.list())
    with pytest.raises(RoomError, match="invalid room name"):
        rooms.create(bad)
    assert len(rooms.list()) == before


def test_room_lifecycle(rooms: Rooms) -> None:
    room = rooms.create("project-alpha")
    assert (room.type, room.members) == ("project", ["leader"])
    assert rooms.invite("project-alpha", "@researcher").members == ["leader", "researcher"]
    assert rooms.remove("project-alpha", "leader").members == ["researcher"]
    with pytest.raises(RoomError, match="last member"):
        rooms.remove("project-alpha", "researcher")
    with pytest.raises(RoomError, match="no bot named"):
        rooms.invite("project-alpha", "ghost")
    with pytest.raises(RoomError, match="already exists"):
        rooms.create("project-alpha")
    with pytest.raises(RoomError, match="invalid room type"):
        rooms.create("x", "party")


def test_chat_mapping(rooms: Rooms) -> None:
    rooms.create("ops")
    assert rooms.for_chat("telegram", "42").name == "general"
    rooms.map_chat("ops", "telegram:42")
    assert rooms.for_chat("telegram", "42").name == "ops"
    assert rooms.unmap_chat("telegram:42")
    assert rooms.for_chat("telegram", "42").name == "general"
    with pytest.raises(RoomError):
        parse_chat_ref("telegram")
    assert validate_room_name("ok_name-1") == "ok_name-1"


def test_tasks_with_history_and_handoff(rooms: Rooms, db: Database) -> None:
    tasks = Tasks(TaskRepo(db), rooms)
    room = rooms.create("alpha")
    task = tasks.add(room, "Ship landing page", "coder", "high", "2025-01-15")
    assert (task.number, task.owner, task.status, task.due) == (1, "coder", "todo", "2025-01-15")
    assert "coder" in rooms.get("alpha").members  # an owner joins the room
    tasks.set_status(room, 1, "in_progress", actor="coder")
    tasks.handoff(room, 1, "auditor", "ready for review", actor="coder")
    events = tasks.history(room, 1)
    assert [(e.kind, e.actor, e.from_value, e.to_value) for e in events] == [
        ("created", "user", None, "coder"),
        ("status", "coder", "todo", "in_progress"),
        ("handoff", "coder", "coder", "auditor"),
    ]
    assert events[2].reason == "ready for review"
    assert tasks.add(room, "Second", "leader").number == 2


def test_task_errors(rooms: Rooms, db: Database) -> None:
    tasks = Tasks(TaskRepo(db), rooms)
    room = rooms.create("beta")
    with pytest.raises(TaskError, match="priority"):
        tasks.add(room, "x", "leader", "whenever")
    with pytest.raises(TaskError, match="due date"):
        tasks.add(room, "x", "leader", due="tomorrow")
    with pytest.raises(TaskError, match="no task 9"):
        tasks.set_status(room, 9, "done")
    tasks.add(room, "x", "leader")
    with pytest.raises(TaskError, match="invalid status"):
        tasks.set_status(room, 1, "finished")
    with pytest.raises(TaskError, match="reason"):
        tasks.handoff(room, 1, "coder", " ")
    assert tasks.history(room, 1)[-1].kind == "created"  # nothing half-written


def test_task_cas_rejects_a_stale_write(rooms: Rooms, db: Database) -> None:
    repo = TaskRepo(db)
    room = rooms.create("gamma")
    stale = repo.add(room.id, "t", "leader", "low", None, "user")
    assert repo.change(stale, "status", "in_progress", "a", "status") is not None
    assert repo.change(stale, "status", "done", "b", "status") is None  # read an old version: refused
    assert repo.get(room.id, 1).status == "in_progress"


def test_room_settings_cas_loses_no_update_under_contention(tmp_path: Path) -> None:
    """Eight threads, each with its own connection (like separate processes), increment one counter."""
    path = tmp_path / "cas.db"
    repo = RoomRepo(Database(path))
    room = repo.create("counter", "project", ["leader"])

    def bump() -> None:
        mine = RoomRepo(Database(path))
        for _ in range(25):
            mine.update_settings(room.id, lambda s: {**s, "n": s.get("n", 0) + 1}, attempts=1000)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = repo.get_by_id(room.id)
    assert final.settings["n"] == 200
    assert final.version == 200


def test_messages_recent_is_oldest_first(db: Database, rooms: Rooms) -> None:
    repo = MessageRepo(db)
    room = rooms.general()
    for i in range(5):
        repo.add(Message(room.id, "user", "user", f"m{i}"))
    repo.add(Message(room.id, "coder", "assistant", "{...}", kind="tool_call"))
    assert [m.content for m in repo.recent(room.id, 3)] == ["m2", "m3", "m4"]
    assert repo.count(room.id) == 6


async def test_a_rerun_turn_keeps_one_copy_of_the_message(tmp_path: Path) -> None:
    """The gateway re-runs a turn that crashed mid-model-call with the same turn id."""
    from nanofolks.config.schema import Config
    from nanofolks.llm.client import LLM, ChatResult
    from nanofolks.orchestrator.pipeline import Pipeline

    class Instant(LLM):
        async def chat(self, messages, *, model, bot="", **_):  # noqa: ANN001, ANN003
            return ChatResult(text=f"{bot} here", model=model)

    db = Database(tmp_path / "p.db")
    crew = install_team(tmp_path / "ws", "pirate_crew")
    room = Rooms(RoomRepo(db), crew).general()
    config = Config()
    config.orchestrator.llm_intent = False
    pipeline = Pipeline(config, crew, Instant(config), MessageRepo(db))
    await pipeline.handle(room, "@coder hi", turn_id="telegram-inbox-7")
    await pipeline.handle(room, "@coder hi", turn_id="telegram-inbox-7")
    users = [m for m in MessageRepo(db).recent(room.id, 50) if m.role == "user"]
    assert [m.content for m in users] == ["@coder hi"]
    await pipeline.handle(room, "@coder hi")  # a new turn with the same text is a new message
    assert len([m for m in MessageRepo(db).recent(room.id, 50) if m.role == "user"]) == 2
