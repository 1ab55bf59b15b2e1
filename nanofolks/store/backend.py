"""Which store a storage URL names, opened: every command and the gateway open theirs here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from nanofolks.config import paths
from nanofolks.store.db import Database, StoreError

if TYPE_CHECKING:
    from nanofolks.store.postgres import PgDatabase


def storage_url(configured: str = "") -> str:
    """NANOFOLKS_STORAGE_URL, else the configured storage.url, else the home's SQLite file."""
    return os.environ.get("NANOFOLKS_STORAGE_URL") or configured or f"sqlite://{paths.db_path()}"


def open_database(url: str) -> Database | PgDatabase:
    """The store a storage URL names (PostgreSQL's driver is imported only for a postgresql:// URL)."""
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and rest:
        return Database(Path(rest).expanduser())
    if scheme in ("postgresql", "postgres") and sep:
        from nanofolks.store.postgres import PgDatabase

        return PgDatabase(url)
    shown = url if scheme == "sqlite" else f"{scheme}{sep}..."  # never echo a password
    raise StoreError(f"storage URL {shown!r} is not sqlite:///path/to/file.db or postgresql://user@host/db")
