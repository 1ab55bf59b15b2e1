"""Copy a home's database out (JSON lines, CSV or a SQLite file) and back into a fresh one, through sqlite-utils.

Every table of the data is exported; what is derived is not: the migrations record, the full-text tables (their
triggers fill them again as rows come back in) and SQLite's own. The vector index file is rebuilt from
`memory_vectors` when memory next starts."""

from __future__ import annotations

import base64
import csv
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from nanofolks.store.db import StoreError

FORMATS = ("jsonl", "csv", "sqlite")
MANIFEST = "manifest.json"
SQLITE_FILE = "nanofolks.db"


def data_tables(db: sqlite_utils.Database) -> list[str]:
    """The tables that hold data, in creation order (parents before the rows that refer to them)."""
    virtual = [t.name for t in db.tables if t.virtual_table_using]
    return [t.name for t in db.tables
            if not t.virtual_table_using and t.name != "_migrations" and not t.name.startswith("sqlite_")
            and not any(t.name.startswith(f"{v}_") for v in virtual)]


def migrations(db: sqlite_utils.Database) -> list[str]:
    return [row["name"] for row in db.query("SELECT name FROM _migrations ORDER BY name")]


def export(db_path: Path, out: Path, fmt: str) -> dict[str, int]:
    """Write the database at `db_path` into the folder `out` as `fmt`; returns rows per table."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    source = sqlite_utils.Database(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True))
    try:
        if fmt == "sqlite":
            target = sqlite3.connect(out / SQLITE_FILE)
            source.conn.backup(target)  # a consistent copy even while the gateway writes
            target.close()
        counts = {}
        for table in data_tables(source):
            rows = source[table].rows
            if fmt == "jsonl":
                counts[table] = _write_jsonl(out / f"{table}.jsonl", rows)
            elif fmt == "csv":
                counts[table] = _write_csv(out / f"{table}.csv", source[table].columns_dict, rows)
            else:
                counts[table] = source[table].count
        manifest = {"format": fmt, "migrations": migrations(source), "tables": counts}
    finally:
        source.conn.close()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return counts


def import_into(db_path: Path, source: Path) -> dict[str, int]:
    """Load an export folder into the database at `db_path` (already migrated), which must hold no data.

    The rows go into a copy of the database that replaces it only once every table is in and counted, so a
    damaged export leaves the target as it was (sqlite-utils commits each table on its own)."""
    manifest = read_manifest(source)
    staging = db_path.with_name(db_path.name + ".importing")
    with sqlite3.connect(db_path) as live, sqlite3.connect(staging) as copy:
        live.backup(copy)
    target = sqlite_utils.Database(sqlite3.connect(staging))
    try:
        counts = _load_rows(target, manifest, source)
        target.conn.close()
        for suffix in ("-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        os.replace(staging, db_path)
        return counts
    finally:
        target.conn.close()
        staging.unlink(missing_ok=True)


def _load_rows(target: sqlite_utils.Database, manifest: dict[str, Any], source: Path) -> dict[str, int]:
    unknown = set(manifest["migrations"]) - set(migrations(target))
    if unknown:
        raise StoreError(f"the export comes from a newer Nanofolks (migrations {', '.join(sorted(unknown))}): "
                         "upgrade before importing")
    tables = set(data_tables(target))
    busy = [t for t in manifest["tables"] if t in tables and target[t].count]
    if busy:
        raise StoreError(f"the target home already holds data (table {busy[0]}): import into a fresh NANOFOLKS_HOME")
    fmt = manifest["format"]
    if fmt == "csv":
        raise StoreError("a CSV export is for reading in a spreadsheet (it cannot tell an empty text from none): "
                         "export with --format jsonl or sqlite to move a home")
    counts = {}
    for table in manifest["tables"]:  # in creation order: rows that refer to others come after them
        if table not in tables:
            raise StoreError(f"the export has a table this version does not know: {table}")
        rows = _read_jsonl(source / f"{table}.jsonl") if fmt == "jsonl" else _sqlite_rows(source, table)
        target[table].insert_all(rows, batch_size=500)
        counts[table] = target[table].count
        if counts[table] != manifest["tables"][table]:
            raise StoreError(f"{table}: {counts[table]} rows imported, the export says {manifest['tables'][table]}")
    return counts


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise StoreError(f"{source} is not a Nanofolks export (no {MANIFEST})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{source / MANIFEST} is damaged: {exc}") from None
    if manifest.get("format") not in FORMATS or not isinstance(manifest.get("tables"), dict):
        raise StoreError(f"{source / MANIFEST} is not a Nanofolks export manifest")
    return manifest


# Binary columns (embeddings, blobs) travel as {"$base64": true, "encoded": ...}, sqlite-utils' own convention.


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: {"$base64": True, "encoded": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
            for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64decode(v["encoded"]) if isinstance(v, dict) and v.get("$base64") else v
            for k, v in row.items()}


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(_encode(row), ensure_ascii=False) + "\n")
            count += 1
    return count


def _write_csv(path: Path, columns: dict[str, type], rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in row.items()})
            count += 1
    return count


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                yield _decode(json.loads(line))
            except json.JSONDecodeError as exc:
                raise StoreError(f"{path.name} line {number} is not JSON: {exc}") from None


def _sqlite_rows(source: Path, table: str) -> Iterator[dict[str, Any]]:
    db = sqlite_utils.Database(sqlite3.connect(f"file:{source / SQLITE_FILE}?mode=ro", uri=True))
    try:
        yield from db[table].rows
    finally:
        db.conn.close()
