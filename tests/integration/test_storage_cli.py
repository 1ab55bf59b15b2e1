"""`nanofolks storage migrate|status`: a SQLite home copied into PostgreSQL (resumable, verified by counts)
and what each bad input says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanofolks.memory.search import fts_query
from nanofolks.store import storage
from nanofolks.store.db import Database, StoreError
from nanofolks.store.memory import Entry, EntryRepo, Filters, SearchRepo, VectorRepo
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.migrations import MIGRATIONS
from nanofolks.store.rooms import RoomRepo
from nanofolks.store.tasks import TaskRepo
from tests.conftest import run_cli


def fill_home(path: Path, messages: int = 120) -> None:
    db = Database(path)
    rooms = RoomRepo(db)
    general = rooms.create("general", "open", ["leader", "coder"])
    ops = rooms.create("ops", "project", ["coder", "leader"])
    repo = MessageRepo(db)
    for n in range(messages):
        repo.add(Message(general.id if n % 2 else ops.id, "user", "user", f"note {n}: the atlas server"))
    TaskRepo(db).add(ops.id, "swap the disk", "coder", "high", None, "user")
    EntryRepo(db).add(Entry(text="Invoice INV-4471 was paid in March"))
    VectorRepo(db).put([("message", 1, "m", b"\x01\x02"), ("message", 2, "m", None)])
    with db.write() as conn:  # a gap in the ids: copied ids are kept, not renumbered
        conn.execute("DELETE FROM messages WHERE id = 3")
    db.close()


def test_a_home_is_copied_and_works_on_postgres(home: Path, pg_url: str) -> None:
    fill_home(home / "nanofolks.db")
    done = run_cli("storage", "migrate", "--to", pg_url, home=home)
    assert done.returncode == 0, done.stderr
    assert "every count matches" in done.stdout and "messages" in done.stdout

    from nanofolks.store.postgres import PgDatabase

    db = PgDatabase(pg_url, local_dir=home)
    try:
        assert RoomRepo(db).get("ops").members == ["coder", "leader"]
        assert db.query_one("SELECT content FROM messages WHERE id = 4")[0] == "note 3: the atlas server"
        assert db.query_one("SELECT COUNT(*) FROM messages WHERE id = 3")[0] == 0
        assert TaskRepo(db).list(RoomRepo(db).get("ops").id)[0].title == "swap the disk"
        found = SearchRepo(db).fts_entries(fts_query("invoice march"), 5, Filters())
        assert [EntryRepo(db).get(i).text for i, _ in found] == ["Invoice INV-4471 was paid in March"]
        assert VectorRepo(db).vector_of("message", 1)[1] == b"\x01\x02"
        new = MessageRepo(db).add(Message(1, "user", "user", "after the move"))
        assert new.id == 121  # identities continue after the largest copied id
    finally:
        db.close()

    status = run_cli("storage", "status", "--json", home=home, env={"NANOFOLKS_STORAGE_URL": pg_url})
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["backend"] == "postgresql" and info["latest"] == MIGRATIONS[-1].__name__
    assert "options=" in info["location"]


def test_an_interrupted_copy_goes_on_where_it_stopped(tmp_path: Path, pg_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from nanofolks.store.postgres import PgDatabase

    source = tmp_path / "home.db"
    fill_home(source, messages=300)
    monkeypatch.setattr(storage, "BATCH", 40)
    seen: list[tuple[str, int]] = []

    def stop_midway(table: str, copied: int, total: int) -> None:
        seen.append((table, copied))
        if table == "messages" and copied >= 120:
            raise KeyboardInterrupt  # Ctrl-C, or a lost connection

    target = PgDatabase(pg_url)
    with pytest.raises(KeyboardInterrupt):
        storage.copy_home(source, target, stop_midway)
    assert target.query_one("SELECT COUNT(*) FROM messages")[0] == 120
    seen.clear()
    counts = storage.copy_home(source, target, lambda table, copied, total: seen.append((table, copied)))
    assert all(c.ok for c in counts) and {c.table: c.source for c in counts}["messages"] == 299
    assert ("messages", 120) in seen and ("messages", 40) not in seen  # went on, did not start over
    ids = [r[0] for r in target.query("SELECT id FROM messages ORDER BY id")]
    assert ids == [i for i in range(1, 301) if i != 3]
    target.close()


def test_a_target_holding_other_data_is_refused(tmp_path: Path, pg_url: str) -> None:
    from nanofolks.store.postgres import PgDatabase

    fill_home(tmp_path / "home.db")
    target = PgDatabase(pg_url)
    RoomRepo(target).create("theirs", "open", ["leader"])
    with pytest.raises(StoreError, match="already holds data"):
        storage.copy_home(tmp_path / "home.db", target)
    assert target.query_one("SELECT COUNT(*) FROM messages")[0] == 0
    target.close()


def test_bad_targets_are_one_line_each(home: Path) -> None:
    fill_home(home / "nanofolks.db", messages=2)
    wrong = run_cli("storage", "migrate", "--to", "mysql://root:pw@db/x", home=home)
    assert wrong.returncode == 1 and "--to must be a postgresql:// URL" in wrong.stderr
    down = run_cli("storage", "migrate", "--to", "postgresql://nobody:hunter2@127.0.0.1:1/none", home=home)
    assert down.returncode == 1 and "cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:1/none" in down.stderr
    assert "hunter2" not in down.stderr and len(down.stderr.strip().splitlines()) == 1
    configured = run_cli("storage", "status", home=home, env={"NANOFOLKS_STORAGE_URL": "redis://cache/0"})
    assert configured.returncode == 1 and "is not sqlite:///path/to/file.db or postgresql://" in configured.stderr


def test_status_of_a_default_home_is_its_sqlite_file(home: Path) -> None:
    done = run_cli("storage", "status", "--json", home=home)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["backend"] == "sqlite" and info["location"] == str(home / "nanofolks.db")
    assert info["migrations"] == len(MIGRATIONS) and info["unknown_migrations"] == []


def test_export_and_import_refuse_a_home_on_postgres(home: Path, tmp_path: Path) -> None:
    env = {"NANOFOLKS_STORAGE_URL": "postgresql://nanofolks@db.example/nanofolks"}
    for args in (("export", "--out", str(tmp_path / "out")), ("import", str(tmp_path))):
        done = run_cli(*args, home=home, env=env)
        assert done.returncode == 1 and "back it up with pg_dump" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() and not (home / "nanofolks.db").exists()
