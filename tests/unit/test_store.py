"""Storage: migrations, rooms, messages, tasks with event history, compare-and-set under contention."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from nanofolks.config.schema import Config
from nanofolks.crew.crew import install_team
from nanofolks.llm.client import LLM, ChatResult
from nanofolks.orchestrator.pipeline import Pipeline
from nanofolks.rooms.rooms import RoomError, Rooms, parse_chat_ref, validate_room_name
from nanofolks.rooms.tasks import TaskError, Tasks
from nanofolks.store.db import Database
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import Room, RoomRepo
from nanofolks.store.tasks import TaskRepo


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


class Instant(LLM):
    """A model that answers at once: "<bot> here"."""

    async def chat(self, messages, *, model, bot="", **_):  # noqa: ANN001, ANN003
        return ChatResult(text=f"{bot} here", model=model)


def instant_pipeline(tmp_path: Path) -> tuple[Pipeline, Room, Database]:
    """The five steps over a real store and the Instant model; the crew's general room."""
    db = Database(tmp_path / "p.db")
    crew = install_team(tmp_path / "ws", "pirate_crew")
    room = Rooms(RoomRepo(db), crew).general()
    config = Config()
    config.orchestrator.llm_intent = False
    return Pipeline(config, crew, Instant(config), MessageRepo(db)), room, db


async def test_a_rerun_turn_keeps_one_copy_of_the_message(tmp_path: Path) -> None:
    """The gateway re-runs a turn that crashed mid-model-call with the same turn id."""
    pipeline, room, db = instant_pipeline(tmp_path)
    await pipeline.handle(room, "@coder hi", turn_id="telegram-inbox-7")
    await pipeline.handle(room, "@coder hi", turn_id="telegram-inbox-7")
    users = [m for m in MessageRepo(db).recent(room.id, 50) if m.role == "user"]
    assert [m.content for m in users] == ["@coder hi"]
    await pipeline.handle(room, "@coder hi")  # a new turn with the same text is a new message
    assert len([m for m in MessageRepo(db).recent(room.id, 50) if m.role == "user"]) == 2


async def test_the_replies_of_a_turn_and_the_callers_commit_are_one_transaction(tmp_path: Path) -> None:
    """A commit hook that fails (the gateway finding its inbox row answered meanwhile) stores no reply."""
    pipeline, room, db = instant_pipeline(tmp_path)

    def refuse(answer) -> Callable[[sqlite3.Connection], None]:  # noqa: ANN001
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE hook_ran (x)")  # written inside the transaction, rolled back with it
            raise RuntimeError("answered meanwhile")
        return write

    with pytest.raises(RuntimeError, match="answered meanwhile"):
        await pipeline.handle(room, "@coder hi", turn_id="t1", commit=refuse)
    assert [m.role for m in MessageRepo(db).recent(room.id, 50)] == ["user"]
    assert db.query_one("SELECT name FROM sqlite_master WHERE name = 'hook_ran'") is None

    seen: list[tuple[str, bool]] = []

    def prepare(answer) -> Callable[[sqlite3.Connection], None]:  # noqa: ANN001
        seen.append(("prepared", db._conn.in_transaction))  # the reply is formatted before BEGIN IMMEDIATE
        return lambda conn: seen.append((answer.markdown(), conn.in_transaction))

    answer = await pipeline.handle(room, "@coder again", turn_id="t2", commit=prepare)
    assert seen == [("prepared", False), (answer.markdown(), True)] and answer.markdown() == "coder here"
    assert [m.role for m in MessageRepo(db).recent(room.id, 50)] == ["user", "user", "assistant"]


def _scratch(tmp_path: Path) -> Database:
    db = Database(tmp_path / "q.db")
    with db.write() as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    return db


def _note(db: Database, text: str) -> None:
    with db.write() as conn:
        conn.execute("INSERT INTO notes VALUES (?)", (text,))


def _writer(db: Database, text: str) -> str:
    """Write one row, and say which thread did it."""
    _note(db, text)
    return threading.current_thread().name


def _notes(db: Database) -> list[str]:
    return [r[0] for r in db.query("SELECT text FROM notes ORDER BY rowid")]


async def test_quick_runs_on_the_loop_when_the_database_is_free(tmp_path: Path) -> None:
    db = _scratch(tmp_path)
    assert await db.quick(_writer, db, "a") == threading.current_thread().name
    assert _notes(db) == ["a"]


async def test_quick_never_waits_on_the_loop_for_another_process(tmp_path: Path) -> None:
    """Another connection (as another process would) holds the write lock: the call moves to the
    database thread, the loop keeps running meanwhile, and the message is written exactly once."""
    import asyncio
    import sqlite3

    db = _scratch(tmp_path)
    other = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
    writer = await db.quick(_writer, db, "b")
    ticker.cancel()
    assert writer.startswith("nanofolks-db")
    assert ticks >= 10  # the loop went on for the 0.3 s the lock was held
    assert _notes(db) == ["b"]
    assert db.query_one("PRAGMA busy_timeout")[0] == 10_000  # restored for the calls that may wait
    db.close()


async def test_quick_defers_to_the_database_thread_when_it_holds_the_connection(tmp_path: Path) -> None:
    import asyncio

    db = _scratch(tmp_path)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write():
            held.set()
            release.wait(5)

    holder = asyncio.get_running_loop().run_in_executor(None, hold)
    await asyncio.to_thread(held.wait, 5)
    pending = asyncio.ensure_future(db.quick(_writer, db, "c"))
    await asyncio.sleep(0.05)
    assert not pending.done()  # queued behind the holder, not blocking the loop
    release.set()
    await holder
    assert (await pending).startswith("nanofolks-db")


async def test_a_quick_call_past_its_first_write_is_not_run_twice(tmp_path: Path) -> None:
    """The lock is taken between the call's two writes: the second waits, the first stays single."""
    import sqlite3

    db = _scratch(tmp_path)
    other = sqlite3.connect(tmp_path / "q.db", isolation_level=None, check_same_thread=False)

    def two_writes() -> None:
        _note(db, "first")
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.2, other.execute, ("COMMIT",)).start()
        _note(db, "second")

    await db.quick(two_writes)
    assert _notes(db) == ["first", "second"]


def test_the_home_the_database_and_its_wal_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Database(home / "nanofolks.db")
    db.query("SELECT 1")
    with db.write() as conn:  # the WAL and shm files exist once written
        conn.execute("CREATE TABLE probe (x)")
    modes = {p.name: p.stat().st_mode & 0o777 for p in [home, *home.iterdir()]}
    db.close()
    assert modes == {"home": 0o700, "nanofolks.db": 0o600, "nanofolks.db-wal": 0o600, "nanofolks.db-shm": 0o600}


def test_an_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    Database(tmp_path / "old.db").close()
    (tmp_path / "old.db").chmod(0o644)
    Database(tmp_path / "old.db").close()
    assert (tmp_path / "old.db").stat().st_mode & 0o777 == 0o600


def test_each_persons_direct_chat_is_a_room_of_its_own(tmp_path: Path) -> None:
    crew = install_team(tmp_path / "ws", "pirate_crew")
    db = Database(tmp_path / "n.db")
    rooms = Rooms(RoomRepo(db), crew)
    assert rooms.for_conversation("telegram", "111", "private", owner=True).name == "general"
    bob = rooms.for_conversation("telegram", "222", "private", owner=False)
    assert (bob.name, bob.type) == ("telegram-dm-222", "direct") and bob.members == crew.handles
    assert rooms.for_conversation("telegram", "222", "private", owner=False).id == bob.id  # mapped from now on
    assert rooms.for_conversation("telegram", "333", "private", owner=False, shared_dms=True).name == "general"
    assert rooms.for_conversation("telegram", "-100", "group", owner=True).name == "telegram-group--100"
    odd = rooms.for_conversation("whatsapp", "1555@s.whatsapp.net", "private", owner=False)
    validate_room_name(odd.name)
    assert odd.name.startswith("whatsapp-dm-1555-s-whatsapp-net-")
    RoomRepo(db).add_person(bob.id, "telegram:222")
    assert RoomRepo(db).rooms_of("telegram:222") == (bob.id,) and RoomRepo(db).rooms_of("telegram:111") == ()
    db.close()


async def test_two_processes_take_turns_in_a_room_and_each_answers_its_own_message(tmp_path: Path) -> None:
    """Two pipelines on one database file (as the gateway and `chat -m` are): one turn at a time per room,
    and each prompt ends with the message its turn was started for."""
    crew = install_team(tmp_path / "ws", "pirate_crew")
    config = Config()
    config.orchestrator.llm_intent = False
    config.memory.enabled = False
    running: list[str] = []
    overlap: list[int] = []

    class SlowLLM:
        spend = None

        def model_for(self, bot: str) -> str:
            return "openai/fake-model"

        def route_model(self, bot: str, tier: str = "") -> tuple[str, str]:
            return "openai/fake-model", tier

        async def chat(self, messages: list[dict], **kwargs: object) -> ChatResult:
            question = [m["content"] for m in messages if str(m["content"]).startswith("question ")][-1]
            running.append(question)
            overlap.append(len(set(running)))  # turns at once (a turn's own bots may run together)
            await asyncio.sleep(0.3)
            running.remove(question)
            return ChatResult(text=f"answer to {question}", model="openai/fake-model")

    def pipeline() -> tuple[Pipeline, Database]:
        db = Database(tmp_path / "shared.db")
        return Pipeline(config, crew, SlowLLM(), MessageRepo(db)), db  # type: ignore[arg-type]

    (first, db1), (second, db2) = pipeline(), pipeline()
    room = Rooms(RoomRepo(db1), crew).general()
    config.agents.defaults.context_window = 8192
    answers = await asyncio.gather(*(p.handle(room, f"question {n}") for n in range(3) for p in (first, second)))
    assert max(overlap) == 1  # never two turns of one room at once, though two processes
    for answer in answers:
        [part] = answer.parts
        number = part.text.split()[-1]
        assert part.text == f"answer to question {number}"  # its own message, not the room's newest
    db1.close()
    db2.close()
