"""`nanofolks doctor` against the loopback platforms and the scripted model: OK where the setup works, FAIL with
the fix in words where it does not, exit code 1 on any FAIL, and never a secret in what it prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram

PASSPHRASE = {"NANOFOLKS_VAULT_PASSPHRASE": "correct horse battery staple"}


@pytest.fixture
def platforms() -> Iterator[tuple[FakeTelegram, FakeSlack, FakeDiscord]]:
    with FakeTelegram() as tg, FakeSlack() as slack, FakeDiscord() as discord:
        yield tg, slack, discord


def configure(home: Path, tg: FakeTelegram, slack: FakeSlack, discord: FakeDiscord,
              overrides: dict[str, dict] | None = None) -> None:
    overrides = overrides or {}
    config = json.loads((home / "config.json").read_text())
    config["channels"] = {
        "telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base, **overrides.get("telegram", {})},
        "slack": {"enabled": True, "botToken": slack.bot_token, "appToken": slack.app_token,
                  "apiBase": slack.api_base, **overrides.get("slack", {})},
        "discord": {"enabled": True, "token": discord.token, "apiBase": discord.api_base,
                    **overrides.get("discord", {})},
    }
    (home / "config.json").write_text(json.dumps(config))


def doctor(home: Path) -> tuple[int, dict[str, dict]]:
    done = run_cli("doctor", "--json", home=home, env=PASSPHRASE, timeout=180)
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0)
    return done.returncode, {c["name"]: c for c in report["checks"]}


def test_a_working_setup_is_all_ok(crew_home: Path, platforms: tuple) -> None:
    tg, slack, discord = platforms
    configure(crew_home, tg, slack, discord)
    code, checks = doctor(crew_home)
    failing = {n: c for n, c in checks.items() if c["status"] == "FAIL"}
    assert code == 0, failing
    assert checks["telegram"]["status"] == "OK" and "@" in checks["telegram"]["detail"]
    assert checks["slack"]["status"] == "OK" and checks["discord"]["status"] == "OK"
    assert checks["model"]["status"] == "OK" and "openai/fake-model" in checks["model"]["detail"]
    assert checks["database"]["status"] == "OK" and checks["migrations"]["status"] == "OK"
    assert checks["secrets in clear"]["status"] == "WARN"  # the test config keeps its keys in config.json
    human = run_cli("doctor", home=crew_home, env=PASSPHRASE, timeout=180)
    assert human.returncode == 0 and "fix: `nanofolks secrets migrate`" in human.stdout
    assert tg.token not in human.stdout and slack.bot_token not in human.stdout


def test_each_broken_part_is_a_fail_with_its_fix(crew_home: Path, platforms: tuple) -> None:
    tg, slack, discord = platforms
    configure(crew_home, tg, slack, discord, {"telegram": {"token": "999:wrong-token-abcdefghijklmnopqrstuvwxyz"},
                                               "slack": {"appToken": "xapp-wrong"}})
    code, checks = doctor(crew_home)
    assert code == 1
    assert checks["telegram"]["status"] == "FAIL" and "token" in checks["telegram"]["fix"]
    assert checks["slack"]["status"] == "FAIL" and "appToken" in checks["slack"]["fix"]
    assert checks["discord"]["status"] == "OK"

    configure(crew_home, tg, slack, discord, {"discord": {"token": "{{discord_token}}"}})
    code, checks = doctor(crew_home)
    assert code == 1
    # the discord token refers to a vault entry nobody set: named, with the command that sets it
    assert checks["secret discord_token"]["status"] == "FAIL"
    assert checks["secret discord_token"]["fix"] == "`nanofolks secrets set discord_token`"


def test_unreachable_model_and_damaged_database(crew_home: Path, platforms: tuple) -> None:
    config = json.loads((crew_home / "config.json").read_text())
    config["providers"]["openai"]["apiBase"] = "http://127.0.0.1:9/v1"  # nothing listens there
    (crew_home / "config.json").write_text(json.dumps(config))
    db = crew_home / "nanofolks.db"
    data = bytearray(db.read_bytes())
    data[200:4096] = b"\xff" * (4096 - 200)  # the first page's schema area
    db.write_bytes(bytes(data))
    code, checks = doctor(crew_home)
    assert code == 1
    assert checks["model"]["status"] == "FAIL"
    assert checks["database"]["status"] == "FAIL" and "backup" in checks["database"]["fix"]


def test_a_postgres_home_is_checked_on_its_server(crew_home: Path, pg_url: str) -> None:
    from nanofolks.store.postgres import PgDatabase

    config = json.loads((crew_home / "config.json").read_text())
    config["storage"] = {"url": pg_url}
    (crew_home / "config.json").write_text(json.dumps(config))
    _, checks = doctor(crew_home)
    assert checks["database"]["status"] == "OK" and "PostgreSQL 15" in checks["database"]["detail"]
    assert checks["migrations"]["status"] == "WARN"  # an empty schema: doctor looks, never migrates
    PgDatabase(pg_url).close()
    _, checks = doctor(crew_home)
    assert checks["migrations"]["status"] == "OK"
    config["storage"] = {"url": "postgresql://nobody:hunter2@127.0.0.1:1/none"}
    (crew_home / "config.json").write_text(json.dumps(config))
    code, checks = doctor(crew_home)
    assert code == 1 and checks["database"]["status"] == "FAIL" and "storage.url" in checks["database"]["fix"]
    assert "hunter2" not in json.dumps(checks)
