"""Shared fixtures: a fresh $NANOFOLKS_HOME with an onboarded crew, the scripted LLM server, the CLI, and the
store on each backend (SQLite always; PostgreSQL when NANOFOLKS_TEST_POSTGRES names a server)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nanofolks.llm.env import prepare_offline_env
from tests.fakes.llm_server import ScriptedLLM

prepare_offline_env()
# The dashboard fixtures (services, server, browser) for its unit tests.
pytest_plugins = ["tests.unit.dashboard"]
ROOT = Path(__file__).resolve().parents[1]
# A PostgreSQL server the tests may create schemas on (e.g. postgresql://postgres@127.0.0.1:5432/test);
# read at import, as the `home` fixture clears NANOFOLKS_* variables.
TEST_POSTGRES = os.environ.get("NANOFOLKS_TEST_POSTGRES", "")
NO_POSTGRES = "PostgreSQL tests need NANOFOLKS_TEST_POSTGRES=postgresql://user@host:port/db (a server to create schemas on)"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL of an empty schema of its own on the test server, dropped afterwards: runs never meet."""
    if not TEST_POSTGRES:
        pytest.skip(NO_POSTGRES)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(TEST_POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{TEST_POSTGRES}{'&' if '?' in TEST_POSTGRES else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(TEST_POSTGRES, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The store, once on each backend: repository tests take this and run on both."""
    from nanofolks.store.db import Database

    if request.param == "sqlite":
        database: Any = Database(tmp_path / "nf.db")
    else:
        from nanofolks.store.postgres import PgDatabase

        database = PgDatabase(request.getfixturevalue("pg_url"), local_dir=tmp_path)
    yield database
    database.close()


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty NANOFOLKS_HOME for this test (no config yet)."""
    path = tmp_path / "home"
    monkeypatch.setenv("NANOFOLKS_HOME", str(path))
    for name in list(os.environ):
        if name.startswith("NANOFOLKS_") and name != "NANOFOLKS_HOME":
            monkeypatch.delenv(name)
    return path


def onboard(home: Path, model: str, api_base: str = "", team: str = "pirate_crew", single: bool = False) -> None:
    """Onboard in-process (fast): config, workspace, crew and #general, as `nanofolks onboard --yes` does."""
    from nanofolks.config.loader import save_config, workspace_path
    from nanofolks.config.schema import Config
    from nanofolks.crew.crew import install_team
    from nanofolks.services import Services

    config = Config()
    config.agents.defaults.model = model
    config.agents.defaults.max_retries = 1
    config.agents.defaults.timeout = 20
    config.providers.openai.api_key = "sk-test"
    config.providers.openai.api_base = api_base
    config.crew.team = team
    config.crew.single = single
    config.orchestrator.llm_intent = False  # tests script every model call; the intent rules are unit-tested
    config.dashboard.port = 0  # any free port: tests running at once never fight over 18790
    install_team(workspace_path(config), team, single=single)
    save_config(config, home / "config.json")
    services = Services.open(config, home / "nanofolks.db")
    services.rooms.general()
    services.close()


@pytest.fixture
def crew_home(home: Path, llm_server: ScriptedLLM) -> Path:
    """A NANOFOLKS_HOME onboarded with the pirate crew, talking to the scripted LLM server."""
    onboard(home, "openai/fake-model", llm_server.base_url)
    return home


def run_cli(*args: str, home: Path, timeout: float = 60, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m nanofolks ARGS` as a user would, in its own process."""
    full_env = {**os.environ, "NANOFOLKS_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "nanofolks", *args], capture_output=True, text=True, timeout=timeout,
        input=input, env=full_env, cwd=ROOT,
    )


def database_before(path: Path, migration: str) -> sqlite3.Connection:
    """A database as a version that knew only the migrations before `migration` left it (an upgrade test)."""
    from nanofolks.store.migrations import MIGRATIONS

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for fn in MIGRATIONS[:[f.__name__ for f in MIGRATIONS].index(migration)]:
        fn(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, time.time()))
    return conn
