"""Config: camelCase and snake_case, env overrides, ${VAR}, dotted `set` with validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanofolks.config.loader import ConfigError, canonical_key, get_value, load_config, read_raw, set_value


def write(home: Path, data: dict) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(data))


def test_defaults_without_a_file(home: Path) -> None:
    config = load_config()
    assert config.agents.defaults.model == "local/smollm2"
    assert config.crew.team == "pirate_crew"


def test_camel_and_snake_case_keys(home: Path) -> None:
    write(home, {"agents": {"defaults": {"maxTokens": 50}}, "providers": {"openai": {"api_key": "sk-1"}}})
    config = load_config()
    assert config.agents.defaults.max_tokens == 50
    assert config.providers.openai.api_key == "sk-1"


def test_var_substitution_and_env_override(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home, {"providers": {"openai": {"apiKey": "${MY_KEY}"}}})
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    monkeypatch.setenv("NANOFOLKS_AGENTS__DEFAULTS__MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("NANOFOLKS_ORCHESTRATOR__TURN_BUDGET", "5")
    config = load_config()
    assert config.providers.openai.api_key == "sk-from-env"
    assert config.agents.defaults.model == "openai/gpt-4o-mini"
    assert config.orchestrator.turn_budget == 5


def test_set_parses_json_and_keeps_camel_case(home: Path) -> None:
    set_value("agents.defaults.max_tokens", "300")
    set_value("providers.openai.apiBase", "http://127.0.0.1:1234/v1")
    set_value("crew.single", "true")
    set_value("agents.bots.coder.toolMode", "text")
    raw = read_raw()
    assert raw["agents"]["defaults"]["maxTokens"] == 300
    assert raw["providers"]["openai"]["apiBase"] == "http://127.0.0.1:1234/v1"
    assert raw["crew"]["single"] is True
    assert raw["agents"]["bots"]["coder"]["toolMode"] == "text"
    assert load_config().agents.bots["coder"].tool_mode == "text"


def test_set_rejects_bad_values_naming_the_key_and_writes_nothing(home: Path) -> None:
    set_value("crew.team", "space_crew")
    before = (home / "config.json").read_text()
    with pytest.raises(ConfigError, match="agents.defaults.maxTokens"):
        set_value("agents.defaults.maxTokens", "lots")
    with pytest.raises(ConfigError, match="unknown config key: providers.nope"):
        set_value("providers.nope.apiKey", "x")
    with pytest.raises(ConfigError, match="agents.bots.coder.toolMode"):
        set_value("agents.bots.coder.toolMode", "telepathy")
    with pytest.raises(ConfigError, match="webhookUrl must be the https:// URL Telegram calls"):
        set_value("channels.telegram.webhookUrl", "bot.example.com/tg")
    with pytest.raises(ConfigError, match="channels.telegram.webhookSecret"):
        set_value("channels.telegram.webhookSecret", "no spaces or ! allowed")
    assert (home / "config.json").read_text() == before
    set_value("channels.telegram.webhookUrl", "https://bot.example.com/tg")
    assert load_config().channels.telegram.webhook_url == "https://bot.example.com/tg"


def test_broken_file_is_a_clear_error(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config()


def test_get_value_and_canonical_key(home: Path) -> None:
    assert canonical_key("agents.defaults.max_tokens") == ["agents", "defaults", "maxTokens"]
    assert get_value({"agents": {"defaults": {"maxTokens": 7}}}, "agents.defaults.maxTokens") == 7


def test_config_file_is_private(home: Path) -> None:
    set_value("providers.openai.apiKey", "sk-secret")
    assert (home / "config.json").stat().st_mode & 0o077 == 0


def test_unknown_keys_anywhere_are_one_warning_each_once_and_kept(
        home: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanofolks.config import loader

    monkeypatch.setattr(loader, "_warned", set())
    write(home, {"colours": {"enabled": True}, "agents": {"defaults": {"maxTokens": 99, "thinking": "hard"},
                                                          "bots": {"coder": {"toolMode": "text", "mood": 3}}},
                 "channels": {"matrix": {"enabled": True}, "telegram": {"enabled": False, "polling": 1}}})
    with caplog.at_level("WARNING", logger="nanofolks.config.loader"):
        config = load_config()
        load_config()  # a second load in the same command says nothing new
    assert config.agents.defaults.max_tokens == 99
    assert config.agents.bots["coder"].tool_mode == "text"
    warned = [r.getMessage() for r in caplog.records]
    assert [w.split()[4] for w in warned] == [
        "colours", "agents.defaults.thinking", "agents.bots.coder.mood", "channels.matrix",
        "channels.telegram.polling"]
    assert all(w.startswith("warning: unknown config key ") and w.endswith("(ignored)") for w in warned)
    # A command that saves the config loses nothing the user wrote.
    loader.save_config(config)
    saved = read_raw()
    assert saved["colours"] == {"enabled": True} and saved["agents"]["bots"]["coder"]["mood"] == 3


def test_set_of_an_unknown_key_is_refused_even_when_the_file_has_it(home: Path) -> None:
    write(home, {"colours": {"enabled": True}})
    with pytest.raises(ConfigError, match="unknown config key: colours"):
        set_value("colours.enabled", "false")
    with pytest.raises(ConfigError, match="unknown config key: agents.defaults.thinking"):
        set_value("agents.defaults.thinking", "hard")
    assert read_raw() == {"colours": {"enabled": True}}


def test_team_set_and_onboard_change_only_their_keys(home: Path) -> None:
    from tests.conftest import onboard, run_cli

    onboard(home, "openai/fake-model")
    raw = read_raw(home / "config.json")
    raw["providers"]["openai"]["apiBase"] = "${MY_BASE}"
    write(home, raw)
    env = {"MY_BASE": "http://127.0.0.1:9/v1", "NANOFOLKS_AGENTS__DEFAULTS__MODEL": "openai/from-the-env"}

    switched = run_cli("team", "set", "rock_band", home=home, env=env)
    assert switched.returncode == 0, switched.stderr
    raw["crew"]["team"] = "rock_band"
    assert read_raw(home / "config.json") == raw  # ${MY_BASE} kept, the model the file had, nothing else

    again = run_cli("onboard", "--yes", "--team", "space_crew", "--single", home=home, env=env)
    assert again.returncode == 0, again.stderr
    raw["crew"].update(team="space_crew", single=True)
    assert read_raw(home / "config.json") == raw

    fresh = home.parent / "fresh"  # a first onboarding writes the defaults, not the environment's values
    first = run_cli("onboard", "--yes", home=fresh, env=env)
    assert first.returncode == 0, first.stderr
    written = read_raw(fresh / "config.json")
    assert written["agents"]["defaults"]["model"] == "local/smollm2" and "channels" in written
