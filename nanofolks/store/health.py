"""Read-only looks at a database for `nanofolks doctor`: it must not change what it examines. A database is
a SQLite file (a Path) or a PostgreSQL URL (read in a read-only transaction, never migrated)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Target = Path | str  # the SQLite file, or a postgresql:// URL


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _rows(target: Target, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
    if isinstance(target, Path):
        with read_only(target) as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    from nanofolks.store.postgres import CONNECT_TIMEOUT, to_psycopg

    with psycopg.connect(target, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.read_only = True  # BEGIN READ ONLY: a look, whatever the SQL
        return conn.execute(to_psycopg(sql), params).fetchall()


def integrity(path: Path) -> str:
    """'ok', or SQLite's first complaint."""
    return str(_rows(path, "PRAGMA integrity_check")[0][0])


def server(url: str) -> str:
    """The PostgreSQL server's version, as a connection sees it (the check that it answers)."""
    return str(_rows(url, "SHOW server_version")[0][0])


def applied_migrations(target: Target) -> set[str]:
    """The migrations recorded (none in a PostgreSQL database nothing has been created in yet)."""
    if isinstance(target, str) and not _rows(target, "SELECT to_regclass('_migrations') IS NOT NULL")[0][0]:
        return set()
    return {row[0] for row in _rows(target, "SELECT name FROM _migrations")}


def vector_labels(target: Target, model: str) -> set[int]:
    """The labels of the vectors the database holds for one embedding model (what the index must hold)."""
    rows = _rows(target, "SELECT label FROM memory_vectors WHERE model = ? AND vector IS NOT NULL", (model,))
    return {int(r[0]) for r in rows}
