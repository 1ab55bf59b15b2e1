"""Read-only looks at a database for `nanofolks doctor`: it must not change what it examines."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def integrity(path: Path) -> str:
    """'ok', or SQLite's first complaint."""
    with read_only(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def applied_migrations(path: Path) -> set[str]:
    with read_only(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM _migrations")}


def vector_labels(path: Path, model: str) -> set[int]:
    """The labels of the vectors the database holds for one embedding model (what the index must hold)."""
    with read_only(path) as conn:
        rows = conn.execute("SELECT label FROM memory_vectors WHERE model = ? AND vector IS NOT NULL", (model,))
        return {int(r[0]) for r in rows}
