"""What a newcomer's mistakes look like: typer's short usage message and exit code 2, never a traceback;
bare `nanofolks` is the help. Run as a user runs the CLI, in its own process, with the installed typer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(("args", "command", "error"), [
    (("frobnicate",), "nanofolks", "No such command 'frobnicate'"),  # `metrics` was the example; it exists now
    (("chat", "-m", "hi", "--bogus"), "nanofolks chat", "No such option"),
    (("channels", "login"), "nanofolks channels login", "Missing argument"),
    (("memory", "search", "x", "--limit", "many"), "nanofolks memory search", "Invalid value for '--limit'"),
])
def test_a_usage_mistake_is_the_short_usage_message_and_exit_2(
        tmp_path: Path, args: tuple[str, ...], command: str, error: str) -> None:
    result = run_cli(*args, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Usage: {command} [OPTIONS]"), result.stderr
    assert f"Try '{command} --help' for help." in result.stderr
    assert error in result.stderr
    assert result.stdout == ""


def test_bare_nanofolks_prints_the_help_and_exits_0(tmp_path: Path) -> None:
    result = run_cli(home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: nanofolks [OPTIONS]")
    assert "Commands:" in result.stdout and "chat" in result.stdout
    assert result.stderr == ""


def test_a_user_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text("{not json")
    result = run_cli("config", "list", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_config_key_is_one_warning_and_never_fatal(tmp_path: Path) -> None:
    # The README once published a `routing` block before the code knew it: a section this version does not
    # know (here `webui`) must leave the CLI working.
    (tmp_path / "config.json").write_text(json.dumps({
        "webui": {"enabled": True, "tiers": {"simple": {"model": "x"}}},
        "agents": {"defaults": {"maxTokens": 300, "thinking": "hard"}},
    }))
    result = run_cli("config", "get", "agents.defaults.maxTokens", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "300"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr  # one line per unknown key, once per command
    assert "webui" in warnings[0] and "agents.defaults.thinking" in warnings[1]
    assert all("unknown config key" in w for w in warnings)
    refused = run_cli("config", "set", "webui.enabled", "false", home=tmp_path)
    assert refused.returncode == 1
    assert "unknown config key: webui" in refused.stderr
    assert json.loads((tmp_path / "config.json").read_text())["webui"]["enabled"] is True
