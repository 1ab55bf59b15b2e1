"""`nanofolks export` then `nanofolks import` into a fresh home: history, tasks with handoffs and memory come
back whole, secrets in clear never leave, and a bad export is refused with one line, leaving the target empty."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli


def rows(home: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(home / "nanofolks.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def busy_home(crew_home: Path) -> Path:
    """A home with a conversation, a task handed off, a memory and a binary blob column."""
    assert run_cli("chat", "-m", "@coder remember the launch code is 4711 🚀", "--no-stream", home=crew_home, timeout=300,
                   ).returncode == 0
    assert run_cli("room", "create", "project-alpha", home=crew_home).returncode == 0
    assert run_cli("room", "task", "add", "--room", "project-alpha", "--owner", "coder", "Ship it",
                   home=crew_home).returncode == 0
    assert run_cli("room", "task", "handoff", "--room", "project-alpha", "1", "auditor", "--reason", "review",
                   home=crew_home).returncode == 0
    assert run_cli("memory", "add", "Our database is PostgreSQL 15", home=crew_home).returncode == 0
    return crew_home


COMPARED = ["SELECT room_id, role, content FROM messages ORDER BY id",
            "SELECT * FROM task_events ORDER BY id",
            "SELECT name, type FROM rooms ORDER BY name",
            "SELECT text FROM memory_entries ORDER BY id"]


@pytest.mark.parametrize("fmt", ["jsonl", "sqlite"])
def test_export_then_import_into_a_fresh_home(busy_home: Path, tmp_path: Path, fmt: str) -> None:
    config = json.loads((busy_home / "config.json").read_text())
    config["channels"] = {"telegram": {"token": "123456:AAE-secret-in-clear-abcdefghijklmnopqrst",
                                       "webhookSecret": "{{telegram_webhook_secret}}"}}
    (busy_home / "config.json").write_text(json.dumps(config))
    out = tmp_path / "backup"
    done = run_cli("export", "--out", str(out), "--format", fmt, "--json", home=busy_home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["secrets_left_out"] == ["providers.openai.apiKey", "channels.telegram.token"]
    assert "AAE-secret-in-clear" not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert json.loads((out / "config.json").read_text())["channels"]["telegram"]["webhookSecret"] \
        == "{{telegram_webhook_secret}}"

    fresh = tmp_path / "fresh"
    done = run_cli("import", str(out), home=fresh)
    assert done.returncode == 0, done.stderr
    assert "telegram_webhook_secret" in done.stdout  # the vault entry to set again is named
    for sql in COMPARED:
        assert rows(fresh, sql) == rows(busy_home, sql), sql
    assert rows(fresh, "SELECT count(*) FROM messages")[0][0] > 0
    assert (fresh / "workspace" / "crew" / "roles" / "coder.md").is_file()
    # the full-text index came back with the rows: the imported history is searchable
    vault = {"NANOFOLKS_VAULT_PASSPHRASE": "a passphrase on the new machine"}
    assert run_cli("secrets", "set", "telegram_webhook_secret", home=fresh, env=vault, input="s3cret-value\n",
                   ).returncode == 0
    found = run_cli("memory", "search", "launch code", "--json", home=fresh, env=vault)
    assert found.returncode == 0 and "4711" in found.stdout


def test_import_refuses_a_home_with_data_and_a_damaged_export(busy_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "backup"
    assert run_cli("export", "--out", str(out), home=busy_home).returncode == 0
    done = run_cli("import", str(out), home=busy_home)
    assert done.returncode == 1 and "already holds data" in done.stderr and "Traceback" not in done.stderr

    lines = (out / "messages.jsonl").read_text().splitlines()
    (out / "messages.jsonl").write_text("\n".join([*lines[:-1], "{not json"]) + "\n")
    fresh = tmp_path / "fresh"
    done = run_cli("import", str(out), home=fresh)
    assert done.returncode == 1 and "messages.jsonl line" in done.stderr
    assert rows(fresh, "SELECT count(*) FROM rooms")[0][0] == 0  # one transaction: nothing half-imported

    assert run_cli("import", str(tmp_path), home=fresh).returncode == 1  # not an export at all
    done = run_cli("export", "--out", str(tmp_path / "csv"), "--format", "csv", home=busy_home)
    assert done.returncode == 0 and (tmp_path / "csv" / "messages.csv").is_file()
    done = run_cli("import", str(tmp_path / "csv"), home=tmp_path / "other")
    assert done.returncode == 1 and "jsonl or sqlite" in done.stderr
