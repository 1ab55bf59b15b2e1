"""Secrets: the detector over a labelled set, the sanitizer, both vault backends, capture and resolution,
config references and masking, and tools getting values only when they run."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from nanofolks.config.loader import ConfigError, load_config, read_raw, save_config
from nanofolks.config.schema import Config
from nanofolks.config.secret_fields import field_at, masked, plain_secrets, reference_name, secret_values
from nanofolks.secrets import keeper as keeper_module
from nanofolks.secrets.detect import find
from nanofolks.secrets.keeper import Keeper, shared_keeper
from nanofolks.secrets.sanitize import remember, sanitize, sanitize_messages
from nanofolks.secrets.vault import FileVault, KeyringVault, NoVault, VaultError, open_vault
from tests.conftest import run_cli
from tests.unit.secret_samples import LOOKALIKES, POSITIVES

PASSPHRASE = "correct horse battery staple"


# --- the detector --------------------------------------------------------------------------------------


def test_the_labelled_set_is_balanced() -> None:
    kinds = {kind for kind, _, _ in POSITIVES}
    assert len(LOOKALIKES) >= len(POSITIVES) >= 40 and len(kinds) >= 25


@pytest.mark.parametrize(("kind", "message", "secret"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(POSITIVES)])
def test_every_positive_is_caught_whole_and_named(kind: str, message: str, secret: str) -> None:
    text = message.format(s=secret)
    found = [(f.kind, f.value(text)) for f in find(text)]
    assert (kind, secret) in found
    assert len(found) == 1 + ("AKIA" in message)  # one sample pairs an AWS key id with its secret


def test_look_alikes_stay_untouched() -> None:
    touched = [text for text in LOOKALIKES if find(text)]
    assert len(touched) * 20 <= len(LOOKALIKES), touched  # the goal: at most one in twenty
    assert touched == []  # what this set measures today


def test_several_secrets_in_one_message_are_all_found_in_order() -> None:
    github, aws = POSITIVES[8][2], POSITIVES[16][2]
    text = f"first {github} then {aws} and password=Sup3rSecret!"
    assert [f.kind for f in find(text)] == ["github_token", "aws_access_key_id", "password"]


def test_odd_unicode_does_not_shift_what_is_found() -> None:
    token = POSITIVES[8][2]
    text = f"İİİ straße password=Zz9{token[4:20]} and {token}"  # 'İ'.lower() is two characters
    found = find(text)
    assert [f.value(text) for f in found] == [f"Zz9{token[4:20]}", token]


# --- the sanitizer ---------------------------------------------------------------------------------------


def test_sanitize_names_known_values_and_redacts_unknown_ones() -> None:
    remember("my-known-secret-value", "{{known}}")
    github = POSITIVES[8][2]
    text = f"known my-known-secret-value, unknown {github}"
    assert sanitize(text) == "known {{known}}, unknown [redacted github_token]"
    assert sanitize(sanitize(text)) == sanitize(text)
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": None, "tool_calls": []}]
    clean = sanitize_messages(messages)
    assert clean[0]["content"] == sanitize(text) and clean[1] is messages[1] and messages[0]["content"] == text
    later = "deploy with later-known-value-42"
    assert sanitize(later) == later  # nothing to hide yet (and the answer is cached)...
    remember("later-known-value-42", "{{deploy}}")
    assert sanitize(later) == "deploy with {{deploy}}"  # ...until the value is known: the cache is dropped


# --- the vault ---------------------------------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    """A keyring backend living in this process, registered through keyring's own API: it stands in for
    the Secret Service this machine does not run. Everything above it is the real keyring package."""

    priority = -1  # type: ignore[assignment]  # keyring registers every subclass: never chosen on its own

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username))


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


@pytest.fixture
def file_vault(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NANOFOLKS_VAULT_PASSPHRASE", PASSPHRASE)
    keeper_module._shared.clear()
    return home / "vault.enc"


def test_without_keyring_or_passphrase_nothing_is_kept_and_the_error_says_how(home: Path) -> None:
    vault = open_vault()
    assert isinstance(vault, NoVault) and "NANOFOLKS_VAULT_PASSPHRASE" in vault.backend
    with pytest.raises(VaultError, match="NANOFOLKS_VAULT_PASSPHRASE"):
        Keeper(vault).put("x_token", "value-123456")
    captured = Keeper(vault).capture(f"token {POSITIVES[8][2]}", "cli")
    assert captured.text == "token [redacted github_token]" and captured.kept == []
    assert "did not keep it" in captured.notice() and "NANOFOLKS_VAULT_PASSPHRASE" in captured.notice()


def test_file_vault_encrypts_locks_down_and_refuses_a_wrong_passphrase(file_vault: Path) -> None:
    vault = open_vault()
    assert isinstance(vault, FileVault) and "encrypted file" in vault.backend
    keeper = Keeper(vault)
    keeper.put("db_password", "pl41n-text-never", kind="password", source="cli")
    assert vault.get("db_password") == "pl41n-text-never"
    assert "pl41n-text-never" not in file_vault.read_text() and "db_password" not in file_vault.read_text()
    assert stat.S_IMODE(os.stat(file_vault).st_mode) == 0o600
    other = FileVault(file_vault, PASSPHRASE)  # another process: a fresh instance reading the file
    assert other.entries()["db_password"].source == "cli"
    other.set(other.entries()["db_password"], "changed-by-other")
    assert vault.get("db_password") == "changed-by-other"
    with pytest.raises(VaultError, match="wrong passphrase"):
        FileVault(file_vault, "not the passphrase").get("db_password")
    assert keeper.forget("db_password") and not keeper.forget("db_password")
    assert vault.entries() == {}


def test_keyring_vault_is_preferred_when_a_keyring_works(home: Path, memory_keyring: MemoryKeyring,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOFOLKS_VAULT_PASSPHRASE", PASSPHRASE)  # the keyring still wins
    vault = open_vault()
    assert isinstance(vault, KeyringVault) and "MemoryKeyring" in vault.backend
    keeper = Keeper(vault)
    captured = keeper.capture(f"use {POSITIVES[8][2]} please", "telegram:42")
    assert captured.text == "use {{github_token}} please"
    assert memory_keyring.items[("nanofolks", "github_token")] == POSITIVES[8][2]
    assert vault.entries()["github_token"].source == "telegram:42"
    assert not (home / "vault.enc").exists()
    assert keeper.forget("github_token") and ("nanofolks", "github_token") not in memory_keyring.items
    monkeypatch.setenv("NANOFOLKS_VAULT", "file")
    assert isinstance(open_vault(), FileVault)
    monkeypatch.setenv("NANOFOLKS_VAULT", "cloud")
    with pytest.raises(VaultError, match="must be 'keyring' or 'file'"):
        open_vault()


# --- capture and resolve ---------------------------------------------------------------------------------


def test_capture_names_each_secret_once_and_resolve_gives_it_back(file_vault: Path) -> None:
    keeper = Keeper(open_vault())
    github, other_github = POSITIVES[8][2], POSITIVES[9][2]
    first = keeper.capture(f"Create the PR with token {github}", "telegram:1")
    assert first.text == "Create the PR with token {{github_token}}"
    assert [(k.name, k.label) for k in first.kept] == [("github_token", "GitHub token")]
    assert "{{github_token}}" in first.notice() and github not in first.notice()
    again = keeper.capture(f"again {github} and {other_github}", "telegram:1")
    assert again.text == "again {{github_token}} and {{github_token_2}}"
    assert keeper.resolve("curl -H 'Authorization: token {{github_token}}'") == f"curl -H 'Authorization: token {github}'"
    with pytest.raises(VaultError, match="no secret named 'nope'"):
        keeper.resolve("{{nope}}")
    assert keeper.capture("nothing secret here", "cli").notice() == ""
    assert sanitize(f"echo {github}") == "echo {{github_token}}"  # known now: named, not redacted
    with pytest.raises(VaultError, match="not a secret name"):
        keeper.put("Bad Name", "value-123456")


# --- config ------------------------------------------------------------------------------------------------


def test_secret_fields_come_from_the_schema_mark() -> None:
    config = Config.model_validate({"providers": {"openai": {"apiKey": "k-123456"}},
                                    "channels": {"telegram": {"webhookSecret": "hook_secret_1"}}})
    assert dict(secret_values(config)) == {"providers.openai.apiKey": "k-123456",
                                           "channels.telegram.webhookSecret": "hook_secret_1"}
    shown = masked(config.model_dump(by_alias=True))
    assert shown["providers"]["openai"]["apiKey"] == "***"
    assert shown["channels"]["telegram"]["webhookSecret"] == "***"
    assert shown["channels"]["telegram"]["apiBase"] == "https://api.telegram.org"
    field = field_at(["channels", "slack", "appToken"])
    assert field is not None and field.json_schema_extra == {"secret": True}
    assert reference_name("providers.openai.apiKey") == "openai_api_key"
    assert reference_name("channels.telegram.webhookSecret") == "telegram_webhook_secret"


def test_config_references_resolve_from_the_vault_and_fail_clearly(file_vault: Path, home: Path) -> None:
    shared_keeper().put("openai_api_key", "sk-from-the-vault-123")
    save_config({"providers": {"openai": {"apiKey": "{{openai_api_key}}"}},
                 "channels": {"telegram": {"webhookSecret": "{{hook}}"}}}, home / "config.json")
    with pytest.raises(ConfigError, match="channels.telegram.webhookSecret: no secret named 'hook'"):
        load_config()
    shared_keeper().put("hook", "hook_secret_value")
    config = load_config()
    assert config.providers.openai.api_key == "sk-from-the-vault-123"
    assert config.channels.telegram.webhook_secret == "hook_secret_value"
    assert load_config(resolve_secrets=False).providers.openai.api_key == "{{openai_api_key}}"


def test_config_cli_keeps_secrets_in_the_vault_and_never_prints_them(home: Path) -> None:
    env = {"NANOFOLKS_VAULT_PASSPHRASE": PASSPHRASE, "NANOFOLKS_VAULT": "file"}
    plain = {"channels": {"telegram": {"token": "123456789:AAplain-token-in-config-0123456789abc",
                                       "webhookSecret": "webhook_secret_in_clear"}}}
    save_config(plain, home / "config.json")
    listed = run_cli("config", "list", home=home, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "webhook_secret_in_clear" not in listed.stdout and "plain-token" not in listed.stdout
    assert "channels.telegram.webhookSecret" in listed.stderr and "secrets migrate" in listed.stderr
    got = run_cli("config", "get", "channels.telegram.webhookSecret", home=home, env=env)
    assert got.stdout.strip() == '"***"'

    migrated = run_cli("secrets", "migrate", home=home, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert read_raw(home / "config.json")["channels"]["telegram"] == {
        "token": "{{telegram_token}}", "webhookSecret": "{{telegram_webhook_secret}}"}
    assert plain_secrets(read_raw(home / "config.json")) == []

    key = "sk-proj-" + "A1b2" * 20
    set_ = run_cli("config", "set", "providers.openai.apiKey", key, home=home, env=env)
    assert set_.returncode == 0, set_.stderr
    assert key not in set_.stdout and "{{openai_api_key}}" in set_.stdout
    assert read_raw(home / "config.json")["providers"]["openai"]["apiKey"] == "{{openai_api_key}}"
    assert key not in (home / "config.json").read_text()
    got = run_cli("config", "get", "providers.openai.apiKey", home=home, env=env)
    assert got.stdout.strip() == '"{{openai_api_key}}"'

    listed = run_cli("secrets", "list", "--json", home=home, env=env)
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"telegram_token", "telegram_webhook_secret", "openai_api_key"}
    assert rows["openai_api_key"]["usedBy"] == ["providers.openai.apiKey"]
    assert key not in listed.stdout and "webhook_secret_in_clear" not in listed.stdout

    stored = run_cli("secrets", "set", "npm_token", home=home, env=env, input="npm-value-from-stdin\n")
    assert stored.returncode == 0, stored.stderr
    assert FileVault(home / "vault.enc", PASSPHRASE).get("npm_token") == "npm-value-from-stdin"
    empty = run_cli("secrets", "set", "npm_token", home=home, env=env, input="\n")
    assert empty.returncode == 1 and "empty" in empty.stderr
    status = run_cli("status", "--json", home=home, env=env)
    assert "encrypted file" in json.loads(status.stdout)["vault"]
    gone = run_cli("secrets", "delete", "openai_api_key", home=home, env=env)
    assert gone.returncode == 0 and "still refers to {{openai_api_key}}" in gone.stderr
    again = run_cli("secrets", "delete", "openai_api_key", home=home, env=env)
    assert again.returncode == 1 and "no secret named" in again.stderr
    dangling = run_cli("secrets", "list", home=home, env=env)
    assert dangling.returncode == 0 and "config refers to {{openai_api_key}}" in dangling.stderr


def test_config_set_without_a_vault_keeps_the_plain_value_and_says_so(home: Path) -> None:
    done = run_cli("config", "set", "channels.discord.token", "discord-plain-token", home=home)
    assert done.returncode == 0, done.stderr
    assert "discord-plain-token" not in done.stdout and "plain text" in done.stderr
    assert read_raw(home / "config.json")["channels"]["discord"]["token"] == "discord-plain-token"


# --- web_fetch headers -------------------------------------------------------------------------------------


class _EchoAuth(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        _EchoAuth.seen.append(self.headers.get("Authorization"))
        if self.path == "/away":  # to the same server under another host name: the header must not follow
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"you sent {self.headers.get('Authorization')}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def test_web_fetch_headers_get_the_value_only_for_the_first_host(file_vault: Path, home: Path) -> None:
    from nanofolks.agent.tools import builtin_registry
    from nanofolks.services import Services
    from tests.conftest import onboard
    from tests.unit.test_tools import make_ctx

    onboard(home, "openai/fake-model", "http://127.0.0.1:9/v1")
    services = Services.open(db_file=home / "nanofolks.db")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        services.config.tools.web_fetch_allow_private = True
        shared_keeper().put("api_token", "tok-4f9a1c77e2b0d3")
        ctx = make_ctx(services, "researcher")
        ctx.keeper = shared_keeper()
        registry = builtin_registry()
        allowed = registry.for_bot(services.crew.bots["researcher"], services.config, can_delegate=False)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        headers = {"Authorization": "Bearer {{api_token}}"}
        _EchoAuth.seen.clear()
        got = await registry.execute("web_fetch", {"url": f"{base}/echo", "headers": headers}, allowed, ctx)
        assert _EchoAuth.seen == ["Bearer tok-4f9a1c77e2b0d3"]
        assert "you sent Bearer {{api_token}}" in got.text and "tok-4f9a1c77e2b0d3" not in got.text
        _EchoAuth.seen.clear()
        await registry.execute("web_fetch", {"url": f"{base}/away", "headers": headers}, allowed, ctx)
        assert _EchoAuth.seen == ["Bearer tok-4f9a1c77e2b0d3", None]
    finally:
        server.shutdown()
        server.server_close()
        services.close()


def test_every_store_keeps_only_sanitized_text(tmp_path: Path) -> None:
    from nanofolks.store.db import Database
    from nanofolks.store.inbox import InboxRepo, InboxRow
    from nanofolks.store.memory import Entry, EntryRepo
    from nanofolks.store.messages import Message, MessageRepo
    from nanofolks.store.outbox import OutboxRow
    from nanofolks.store.rooms import RoomRepo

    db = Database(tmp_path / "n.db")
    token = "ghp_" + "Mm4s" * 9  # a value no other test has taught the sanitizer, so it is found by its format
    room = RoomRepo(db).ensure("general", "open", ["leader"])
    MessageRepo(db).add(Message(room.id, "user", "user", f"token {token}"))
    EntryRepo(db).add(Entry(f"imported note with {token}", kind="import"))
    inbox_id = InboxRepo(db).add(InboxRow("telegram", "1", "2", "3", f"msg {token}"),
                                 [OutboxRow(key="k", platform="telegram", account="1", chat_id="2", text=f"echo {token}")])
    assert inbox_id is not None
    db.close()
    leaked = [p.name for p in tmp_path.iterdir() if token.encode() in p.read_bytes()]
    assert leaked == []
    db = Database(tmp_path / "n.db")
    texts = [r[0] for r in db.query("SELECT content FROM messages")] + [r[0] for r in db.query("SELECT text FROM memory_entries")]
    assert texts == ["token [redacted github_token]", "imported note with [redacted github_token]"]
    db.close()


def test_onboard_keeps_the_api_key_in_the_vault(home: Path) -> None:
    env = {"NANOFOLKS_VAULT_PASSPHRASE": PASSPHRASE}
    key = "sk-proj-" + "Zx9" * 20
    done = run_cli("onboard", "--yes", "--model", "openai/gpt-4o-mini", "--api-key", key, home=home, env=env,
                   timeout=120)
    assert done.returncode == 0, done.stderr
    assert "{{openai_api_key}}" in done.stdout and key not in done.stdout
    assert read_raw(home / "config.json")["providers"]["openai"]["apiKey"] == "{{openai_api_key}}"
    assert FileVault(home / "vault.enc", PASSPHRASE).get("openai_api_key") == key
    switched = run_cli("team", "set", "space_crew", home=home, env=env, timeout=120)  # saves the config again
    assert switched.returncode == 0, switched.stderr
    assert key not in (home / "config.json").read_text()
