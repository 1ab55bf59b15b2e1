"""End to end on the fake servers: a key sent on Telegram is kept in the vault and never reaches the
model's requests, the database, the logs or memory search; a tool still gets the value when it runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.secrets.vault import FileVault
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway

ALICE = 111
PASSPHRASE = "an e2e vault passphrase"
TOKEN = "ghp_" + "Zq8Rw2Lx" * 4 + "K9vT"  # a GitHub classic token's format: ghp_ + 36 characters


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def gateway(crew_home: Path, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.setenv("NANOFOLKS_VAULT_PASSPHRASE", PASSPHRASE)  # no keyring service here: the file vault
    path = crew_home / "config.json"
    config = json.loads(path.read_text())
    config["channels"] = {"telegram": {"enabled": True, "token": tg.token, "apiBase": tg.api_base,
                                       "allowFrom": [str(ALICE)], "pollTimeout": 5}}
    config["tools"] = {"execEnabled": True}
    path.write_text(json.dumps(config))
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def test_a_key_sent_on_telegram_is_kept_named_and_used_but_never_seen(
        gateway: Gateway, tg: FakeTelegram, llm_server: ScriptedLLM, crew_home: Path) -> None:
    command = "printf %s '{{github_token}}' | sha256sum; echo '{{github_token}}'"
    llm_server.add(Rule(handle="coder", has_tool_result=False,
                        tool_calls=[{"name": "exec", "arguments": {"command": command}}]))
    llm_server.add(Rule(handle="coder", has_tool_result=True, reply="PR created. {tool_result}"))
    gateway.start()
    tg.push_message(ALICE, f"@coder Create the PR with token {TOKEN}", user_id=ALICE)
    sent = tg.wait_for_sent(2, 90)
    notice, answer = sent[0]["plain"], sent[1]["plain"]
    assert "GitHub token" in notice and "{{github_token}}" in notice and TOKEN not in notice
    # the tool ran with the real value (its hash), and printed it back only as the name
    assert hashlib.sha256(TOKEN.encode()).hexdigest() in answer
    assert "{{github_token}}" in answer and TOKEN not in answer
    assert gateway.stop() == 0

    assert FileVault(crew_home / "vault.enc", PASSPHRASE).get("github_token") == TOKEN
    requests = json.dumps(llm_server.requests)
    assert "{{github_token}}" in requests and TOKEN not in requests
    leaked = [p.name for p in crew_home.rglob("*") if p.is_file() and p.name != "vault.enc"
              and TOKEN.encode() in p.read_bytes()]
    assert leaked == []  # the database and its WAL, the logs, the memory index, the workspace
    assert (crew_home / "logs" / "gateway.log").read_text() and "kept a github_token" in gateway.output()
    env = {"NANOFOLKS_VAULT_PASSPHRASE": PASSPHRASE}
    found = run_cli("memory", "search", "token", "--json", home=crew_home, env=env, timeout=120)
    assert found.returncode == 0, found.stderr
    assert "Create the PR with token {{github_token}}" in found.stdout and TOKEN not in found.stdout


def test_a_key_typed_in_nanofolks_chat_is_kept_and_never_sent(crew_home: Path, llm_server: ScriptedLLM) -> None:
    key = "sk-ant-api03-" + "Hq7-Lm2_Vx" * 9 + "AA"
    env = {"NANOFOLKS_VAULT_PASSPHRASE": PASSPHRASE}
    done = run_cli("chat", "-m", f"store my anthropic key {key} for later", home=crew_home, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "{{anthropic_api_key}}" in done.stderr and key not in done.stdout + done.stderr
    assert "{{anthropic_api_key}}" in done.stdout  # the scripted model echoes what it was sent: the name
    assert key not in json.dumps(llm_server.requests)
    assert FileVault(crew_home / "vault.enc", PASSPHRASE).get("anthropic_api_key") == key
    leaked = [p.name for p in crew_home.rglob("*") if p.is_file() and p.name != "vault.enc"
              and key.encode() in p.read_bytes()]
    assert leaked == []
