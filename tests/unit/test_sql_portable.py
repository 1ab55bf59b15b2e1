"""The repositories run on SQLite and on PostgreSQL alike (docs/storage.md): SQL only SQLite understands
stays in the modules that speak to SQLite alone or translate for PostgreSQL. The portable spellings:
`INSERT ... ON CONFLICT DO NOTHING`, `RETURNING id`, a key instead of rowid, `db.dialect` for the rest."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQLITE_ONLY = {
    "INSERT OR IGNORE/REPLACE (use ON CONFLICT)": re.compile(r"INSERT\s+OR\s+(IGNORE|REPLACE)", re.I),
    "cursor.lastrowid (use RETURNING id)": re.compile(r"\.lastrowid\b"),
    "rowid (use the table's key)": re.compile(r"\browid\b", re.I),
    "PRAGMA": re.compile(r"\bPRAGMA\b"),
    "LIMIT -1 (leave the LIMIT out)": re.compile(r"LIMIT\s+-1", re.I),
    "SQLite's date functions (db.dialect.local_day)": re.compile(r"'unixepoch'|\bjulianday\(|\bstrftime\('%", re.I),
    "GLOB": re.compile(r"\bGLOB\b"),
}
# Modules that talk to SQLite alone (the SQLite store, backups of its file, doctor's read-only looks, the copy
# out of it) or translate for PostgreSQL (the migrations' DDL, the dialect).
SQLITE_SPEAKERS = {"db.py", "backup.py", "health.py", "storage.py", "migrations.py", "dialect.py", "pg_schema.py",
                   "postgres.py"}


def test_no_sqlite_only_sql_outside_the_modules_that_speak_sqlite() -> None:
    found = []
    for path in sorted((ROOT / "nanofolks").rglob("*.py")):
        if path.parent.name == "store" and path.name in SQLITE_SPEAKERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found += [f"{path.relative_to(ROOT)}:{number}: {what}" for what, pattern in SQLITE_ONLY.items()
                      if pattern.search(line)]
    assert found == [], "SQLite-only SQL:\n" + "\n".join(found)


def test_the_check_catches_what_it_names() -> None:
    sample = ["INSERT OR IGNORE INTO t", "cur.lastrowid", "ORDER BY rowid", "PRAGMA user_version",
              "LIMIT -1 OFFSET 3", "date(at, 'unixepoch')", "name GLOB '*x*'"]
    assert all(any(p.search(s) for p in SQLITE_ONLY.values()) for s in sample)
    assert not any(p.search("INSERT INTO t VALUES (?) ON CONFLICT DO NOTHING RETURNING id") for p in SQLITE_ONLY.values())
