"""The store on both backends: migrations, rows, transactions, portable SQL, full-text search, vectors, and
the storage URL with its bad inputs. Each test taking `db` runs on SQLite and on PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from nanofolks.config.loader import ConfigError, validate
from nanofolks.memory.search import fts_query, specific_query
from nanofolks.store.backend import open_database, storage_url
from nanofolks.store.db import Database, StoreError
from nanofolks.store.memory import EntityRepo, Entry, EntryRepo, Filters, SearchRepo, VectorRepo
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.migrations import MIGRATIONS
from nanofolks.store.rooms import RoomRepo
from nanofolks.store.usage import Usage, UsageRepo
from nanofolks.store.worklog import WorkEntry, WorkLogRepo


def test_every_migration_runs_and_is_recorded_once(db: Database) -> None:
    names = [r[0] for r in db.query("SELECT name FROM _migrations ORDER BY applied_at, name")]
    assert sorted(names) == sorted(fn.__name__ for fn in MIGRATIONS)


def test_reopening_postgres_applies_nothing_again(pg_url: str) -> None:
    from nanofolks.store.postgres import PgDatabase

    first = PgDatabase(pg_url)
    RoomRepo(first).create("general", "open", ["leader"])
    first.close()
    again = PgDatabase(pg_url)
    assert again.query_one("SELECT COUNT(*) FROM _migrations")[0] == len(MIGRATIONS)
    assert RoomRepo(again).get("general").members == ["leader"]
    again.close()


def test_rows_read_by_position_by_name_and_as_a_dict(db: Database) -> None:
    RoomRepo(db).create("general", "open", ["leader", "coder"])
    row = db.query_one("SELECT id, name, type FROM rooms WHERE name = ?", ("general",))
    assert (row[1], row["type"]) == ("general", "open")
    assert dict(row) == {"id": row[0], "name": "general", "type": "open"}
    assert tuple(row) == (row["id"], "general", "open")
    total, = db.query_one("SELECT SUM(position) FROM room_members")
    assert total == 1 and isinstance(total, int)  # SUM of integers is an int on both (NUMERIC on PostgreSQL)


def test_members_keep_the_order_they_were_given(db: Database) -> None:
    rooms = RoomRepo(db)
    room = rooms.create("ops", "project", ["zed", "amy", "leader"])
    assert rooms.add_member(room.id, "bob")
    assert not rooms.add_member(room.id, "amy")
    assert rooms.get("ops").members == ["zed", "amy", "leader", "bob"]
    assert rooms.ensure("ops", "project", ["other"]).members == ["zed", "amy", "leader", "bob"]
    assert rooms.ensure("new", "project", ["b", "a"]).members == ["b", "a"]


def test_question_marks_and_percent_signs_are_data_not_syntax(db: Database) -> None:
    room = RoomRepo(db).create("general", "open", ["leader"])
    MessageRepo(db).add(Message(room.id, "user", "user", "100% sure? 'quoted' \"too\""))
    assert db.query_one("SELECT COUNT(*) FROM messages WHERE content LIKE '%sure?%'")[0] == 1
    assert db.query_one("SELECT content FROM messages WHERE content LIKE '%' || ? || '%'", ("% sure",))[0] == \
        "100% sure? 'quoted' \"too\""


def test_a_failed_write_leaves_nothing(db: Database) -> None:
    rooms = RoomRepo(db)
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute("INSERT INTO rooms (name, type, created_at) VALUES (?, ?, ?)", ("gone", "open", 1.0))
        raise RuntimeError("changed my mind")
    assert rooms.get("gone") is None
    rooms.create("kept", "open", [])  # the connection is usable afterwards
    assert rooms.get("kept") is not None


def test_a_statement_failing_unread_fails_its_whole_write(db: Database) -> None:
    """On PostgreSQL a write's statements are pipelined: an error nobody asked a result for is raised at
    the commit, still inside the write, and nothing of it is kept."""
    if db.dialect.name == "sqlite":
        duplicate: type[Exception] = sqlite3.IntegrityError
    else:
        import psycopg

        duplicate = psycopg.IntegrityError
    with pytest.raises(duplicate), db.write() as conn:
        conn.execute("INSERT INTO memory_state (key, value) VALUES (?, ?)", ("a", "1"))
        conn.execute("INSERT INTO memory_state (key, value) VALUES (?, ?)", ("a", "2"))
    assert db.query("SELECT * FROM memory_state") == []
    with db.write() as conn:  # and the next write works
        conn.execute("INSERT INTO memory_state (key, value) VALUES (?, ?)", ("a", "3"))
    assert db.query_one("SELECT value FROM memory_state WHERE key = 'a'")[0] == "3"


def test_a_read_inside_a_write_sees_that_write(db: Database) -> None:
    with db.write() as conn:
        conn.execute("INSERT INTO memory_state (key, value) VALUES (?, ?)", ("k", "v"))
        assert db.query_one("SELECT value FROM memory_state WHERE key = ?", ("k",))[0] == "v"


def test_writers_take_turns_so_a_read_then_write_loses_no_update(db: Database) -> None:
    db.query("SELECT 1")
    with db.write() as conn:
        conn.execute("INSERT INTO memory_state (key, value) VALUES ('n', '0')")

    def bump(times: int) -> None:
        for _ in range(times):
            with db.write() as conn:  # read, think, write: correct only if no other writer runs in between
                value = int(conn.execute("SELECT value FROM memory_state WHERE key = 'n'").fetchone()[0])
                time.sleep(0.001)
                conn.execute("UPDATE memory_state SET value = ? WHERE key = 'n'", (str(value + 1),))

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert db.query_one("SELECT value FROM memory_state WHERE key = 'n'")[0] == "75"


def test_keyword_search_finds_words_stems_and_codes_best_first(db: Database) -> None:
    entries = EntryRepo(db)
    for text in ("The invoice INV-4471 was paid late", "Running the deploy script on Fridays",
                 "Invoices are sent every month; invoice numbers start with INV", "Lunch at noon"):
        entries.add(Entry(text=text))
    search = SearchRepo(db)

    def texts(query: str) -> list[str]:
        return [entries.get(i).text for i, _ in search.fts_entries(fts_query(query), 10, Filters())]

    codes = [entries.get(i).text for i, _ in search.fts_entries(specific_query("INV-4471"), 10, Filters())]
    assert codes == ["The invoice INV-4471 was paid late"]  # the code as one phrase: "inv 4471"
    assert texts("runs deploy")[0] == "Running the deploy script on Fridays"  # stemmed: runs ~ running
    found = texts("invoice numbers")
    assert found[0].startswith("Invoices are sent") and "Lunch at noon" not in found
    scores = [s for _, s in search.fts_entries(fts_query("invoice numbers"), 10, Filters())]
    assert scores == sorted(scores) and scores[0] < 0  # lower is better, as bm25


def test_keyword_search_over_messages_and_the_work_log_respects_filters(db: Database) -> None:
    rooms = RoomRepo(db)
    general, ops = rooms.create("general", "open", ["leader"]), rooms.create("ops", "project", ["leader"])
    messages = MessageRepo(db)
    messages.add(Message(general.id, "user", "user", "the backup server is called atlas"))
    messages.add(Message(ops.id, "user", "user", "atlas needs a new disk"))
    search = SearchRepo(db)
    hits = search.fts_messages(fts_query("atlas"), 10, Filters(room_id=ops.id))
    assert [MessageRepo(db).db.query_one("SELECT content FROM messages WHERE id = ?", (i,))[0] for i, _ in hits] == \
        ["atlas needs a new disk"]
    log = WorkLogRepo(db)
    log.add(WorkEntry(ops.id, "coder", "tool", "replaced the disk", detail="atlas /dev/sdb swapped"))
    log.add(WorkEntry(general.id, "coder", "tool", "wrote the plan"))
    assert [e.summary for e in log.search(fts_query("atlas disk"), 10)] == ["replaced the disk"]
    assert log.search(fts_query("atlas"), 10, room_id=general.id) == []


def test_aliases_are_found_whatever_their_case(db: Database) -> None:
    entities = EntityRepo(db)
    first = entities.upsert("Alice", "person", None, 1.0, aliases=["Al"])
    assert entities.upsert("ALICE", "concept", None, 2.0) == first
    assert entities.find("al").name == "Alice"
    assert [e.name for e in entities.aliases_in(["alice", "bob"])] == ["Alice"]
    assert entities.find("Alice").last_seen == 2.0


def test_vectors_round_trip_and_a_deleted_message_takes_its_vector_along(db: Database) -> None:
    room = RoomRepo(db).create("general", "open", ["leader"])
    msg = MessageRepo(db).add(Message(room.id, "user", "user", "remember the blue door"))
    vectors = VectorRepo(db)
    labels = vectors.put([("message", msg.id, "m", b"\x00\x01\xff" * 4), ("entry", 9, "m", None)])
    assert all(labels) and vectors.put([("message", msg.id, "m", b"x")]) == [0]  # stored once
    assert vectors.vector_of("message", msg.id) == (labels[0], b"\x00\x01\xff" * 4)
    assert vectors.refs(labels) == {labels[0]: ("message", msg.id)}  # a row without a vector is no hit
    assert vectors.counts()["message:m"] == {"rows": 1, "vectors": 1, "bytes": 12}
    with db.write() as conn:
        conn.execute("DELETE FROM messages WHERE id = ?", (msg.id,))
    assert vectors.vector_of("message", msg.id) is None


def test_spend_is_counted_by_local_day(db: Database) -> None:
    usage = UsageRepo(db)
    usage.record(Usage(model="m", prompt_tokens=3, completion_tokens=4, cost=0.5, tier="simple"))
    usage.record(Usage(model="m", prompt_tokens=1, tier="simple"))
    (row,) = usage.by_day_tier_model(0)
    assert row["day"] == time.strftime("%Y-%m-%d")
    assert (row["calls"], row["prompt_tokens"], row["unpriced"], row["failed"]) == (2, 4, 1, 0)


def test_forgetting_keeps_only_the_newest_events_of_an_entity(db: Database) -> None:
    entities = EntityRepo(db)
    room = RoomRepo(db).create("general", "open", ["leader"])
    ids = [MessageRepo(db).add(Message(room.id, "user", "user", f"atlas {n}")).id for n in range(5)]
    atlas = 0
    for message_id in ids:
        atlas = entities.upsert("atlas", "concept", message_id, 1.0)
    entities.forget_stale(seen_before=0.0, keep_events=2)
    assert [e["message_id"] for e in entities.events(atlas, 10)] == ids[:-3:-1]


# -- the storage URL ---------------------------------------------------------------------------------------

def test_the_default_is_the_homes_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOFOLKS_HOME", str(tmp_path))
    monkeypatch.delenv("NANOFOLKS_STORAGE_URL", raising=False)
    assert storage_url() == f"sqlite://{tmp_path / 'nanofolks.db'}"
    db = open_database(storage_url())
    assert isinstance(db, Database) and db.path == tmp_path / "nanofolks.db"
    db.close()
    monkeypatch.setenv("NANOFOLKS_STORAGE_URL", f"sqlite://{tmp_path / 'other.db'}")
    assert storage_url("postgresql://configured/db") == f"sqlite://{tmp_path / 'other.db'}"  # the variable wins


def test_services_open_the_configured_postgres(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanofolks.config.schema import Config
    from nanofolks.services import Services
    from nanofolks.store.postgres import PgDatabase

    monkeypatch.setenv("NANOFOLKS_HOME", str(tmp_path))
    monkeypatch.delenv("NANOFOLKS_STORAGE_URL", raising=False)
    config = Config()
    config.storage.url = pg_url
    services = Services.open(config)
    assert isinstance(services.db, PgDatabase)
    assert RoomRepo(services.db).ensure("general", "open", ["leader"]).name == "general"
    assert not (tmp_path / "nanofolks.db").exists()
    services.db.close()


def test_a_url_of_another_kind_is_one_clear_line_without_its_password() -> None:
    with pytest.raises(StoreError) as err:
        open_database("mysql://root:hunter2@db/nanofolks")
    assert "hunter2" not in str(err.value) and "postgresql://" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="storage.url must be"):
        validate({"storage": {"url": "mysql://db/x"}})


def test_an_unreachable_server_is_one_clear_line_without_its_password() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as err:
        open_database("postgresql://nobody:hunter2@127.0.0.1:1/nowhere")
    message = str(err.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:1/nowhere: ")
    assert "hunter2" not in message and "\n" not in message


def test_postgres_without_the_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the postgres extra were not installed
    with pytest.raises(StoreError, match=r"pip install 'nanofolks\[postgres\]'"):
        open_database("postgresql://127.0.0.1/test")


def test_losing_the_server_is_one_clear_line_and_the_next_call_reconnects(pg_url: str) -> None:
    import psycopg

    from nanofolks.store.postgres import PgDatabase

    db = PgDatabase(pg_url, max_connections=1)
    pid = db.query_one("SELECT pg_backend_pid()")[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:  # the server ends the session (a restart, a kill)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match=r"^lost the connection to PostgreSQL at postgresql://.*: "):
        RoomRepo(db).get("general")
    assert RoomRepo(db).create("general", "open", ["leader"]).members == ["leader"]  # a fresh connection
    db.close()
