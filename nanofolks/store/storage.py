"""`nanofolks storage`: what a store is (`status`), and copying a SQLite home into PostgreSQL (`migrate`):
every table in batches, resumable, verified by counts.

The target's schema comes from the same migrations. Tables are copied in the order the migrations created
them (a table is created after those it references), rows in rowid order, ids kept. After each batch the
last rowid copied is recorded in the target (`_storage_copy`) in the same transaction as the rows, so an
interrupted copy goes on from there when run again. The source is read in one read transaction: one
consistent snapshot, however long the copy takes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanofolks.store.db import Database, StoreError
from nanofolks.store.migrations import MIGRATIONS

if TYPE_CHECKING:
    from nanofolks.store.postgres import PgDatabase

BATCH = 2000
PROGRESS = "_storage_copy"
Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in all)


def status(db: Database | PgDatabase) -> dict[str, Any]:
    """Which backend, where, its size, and the migrations it has (those this version does not know
    mean a newer nanofolks wrote it)."""
    applied = [r[0] for r in db.query("SELECT name FROM _migrations ORDER BY applied_at, name")]
    if db.dialect.name == "sqlite":
        size = db.file_bytes()
    else:
        size = db.query_one("SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r'"
                            " AND c.relnamespace = current_schema()::regnamespace")[0]
    known = {fn.__name__ for fn in MIGRATIONS}
    return {"backend": db.dialect.name, "location": db.location, "bytes": int(size or 0),
            "migrations": len(applied), "latest": applied[-1] if applied else None,
            "unknown_migrations": [name for name in applied if name not in known]}


@dataclass
class Counted:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


def copy_home(source_path: Path, target: PgDatabase, progress: Progress | None = None) -> list[Counted]:
    """Copy the SQLite database at `source_path` into `target` (already migrated); the counts per table."""
    if not source_path.is_file():
        raise StoreError(f"no SQLite database at {source_path}")
    Database(source_path).close()  # brought to this version's migrations, as the target was
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, isolation_level=None)
    try:
        source.execute("BEGIN")  # one snapshot for the whole copy
        tables = _tables(source)
        _check_target(source, target, tables)
        done = {r[0]: int(r[1]) for r in target.query(f"SELECT tbl, last_rowid FROM {PROGRESS}")}
        for table in tables:
            _copy_table(source, target, table, done.get(table, 0), progress)
        _advance_identities(target, tables)
        return [Counted(t, _count(source, t), int(target.query_one(f"SELECT COUNT(*) FROM {t}")[0])) for t in tables]
    finally:
        source.close()


def _tables(source: sqlite3.Connection) -> list[str]:
    """The tables to copy, parents first: SQLite's own, FTS5's (PostgreSQL indexes the text itself) and
    `_migrations` (the target ran the same ones) are not copied."""
    rows = source.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid").fetchall()
    fts = tuple(name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE"))
    return [name for name, _ in rows if not name.startswith(("sqlite_", "_")) and not name.startswith(fts)]


def _check_target(source: sqlite3.Connection, target: PgDatabase, tables: list[str]) -> None:
    mine = {r[0] for r in source.execute("SELECT name FROM _migrations")}
    theirs = {r[0] for r in target.query("SELECT name FROM _migrations")}
    if mine - theirs:
        raise StoreError(f"the target lacks migrations the home has ({', '.join(sorted(mine - theirs))}):"
                         " run this command with the same version of nanofolks as the home")
    with target.write() as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {PROGRESS} (tbl TEXT PRIMARY KEY, last_rowid BIGINT NOT NULL)")
        started = conn.execute(f"SELECT COUNT(*) FROM {PROGRESS}").fetchone()[0]
    if started:
        return  # a copy of ours to go on with
    for table in tables:
        if target.query_one(f"SELECT 1 FROM {table} LIMIT 1"):
            raise StoreError(f"{target.location} already holds data ({table} has rows) that this command did not"
                             " copy: migrate into an empty database or schema")


def _copy_table(source: sqlite3.Connection, target: PgDatabase, table: str, after: int,
                progress: Progress | None) -> None:
    columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
    names, marks = ", ".join(columns), ", ".join("?" * len(columns))
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    total = _count(source, table)
    copied = source.execute(f"SELECT COUNT(*) FROM {table} WHERE rowid <= ?", (after,)).fetchone()[0]
    if progress:
        progress(table, copied, total)
    while True:
        rows = source.execute(f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                              (after, BATCH)).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        with target.write() as conn:  # the rows and how far we got: kept or lost together
            conn.executemany(insert, [row[1:] for row in rows])
            conn.execute(f"INSERT INTO {PROGRESS} (tbl, last_rowid) VALUES (?, ?)"
                         " ON CONFLICT (tbl) DO UPDATE SET last_rowid = excluded.last_rowid", (table, after))
        copied += len(rows)
        if progress:
            progress(table, copied, total)


def _advance_identities(target: PgDatabase, tables: list[str]) -> None:
    """Ids were copied as they were: each identity's next value must come after the largest."""
    rows = target.query("SELECT table_name, column_name FROM information_schema.columns"
                        " WHERE table_schema = current_schema() AND is_identity = 'YES'")
    with target.write() as conn:
        for table, column in rows:
            if table in tables:
                conn.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), GREATEST(MAX({column}), 1),"
                             f" MAX({column}) IS NOT NULL) FROM {table}", (table, column))


def _count(source: sqlite3.Connection, table: str) -> int:
    return int(source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
