"""A PostgreSQL schema of its own for a test, on the server NANOFOLKS_TEST_POSTGRES names (.ci/run sets it);
without it the PostgreSQL tests are skipped, saying why."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

SERVER = os.environ.get("NANOFOLKS_TEST_POSTGRES", "")
needs_postgres = pytest.mark.skipif(not SERVER, reason="NANOFOLKS_TEST_POSTGRES is not set: no PostgreSQL server to test on")


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema; dropped afterwards."""
    import psycopg

    schema = f"nf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in SERVER else "?"
    try:
        yield f"{SERVER}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
