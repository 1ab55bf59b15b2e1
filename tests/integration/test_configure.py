"""`nanofolks configure` driven as a person drives it: in a pseudo-terminal, answering its questions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect

from tests.conftest import ROOT, run_cli

VAULT = {"NANOFOLKS_VAULT_PASSPHRASE": "the passphrase of this machine"}
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def spawn(home: Path, *args: str) -> pexpect.spawn:
    env = {**os.environ, "NANOFOLKS_HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "200", **VAULT}
    return pexpect.spawn(sys.executable, ["-m", "nanofolks", "configure", *args], env=env, cwd=str(ROOT),
                         encoding="utf-8", timeout=120, dimensions=(40, 200))


def test_channels_section_stores_the_token_in_the_vault_and_validates_answers(crew_home: Path) -> None:
    child = spawn(crew_home, "--section", "channels")
    child.expect(r"Use telegram\? \[y/N\]")
    child.sendline("y")
    child.expect(r"telegram token \(not set\)")
    child.sendline(TOKEN)  # hidden input: never echoed
    child.expect(r"telegram allowFrom \(comma-separated\)")
    child.sendline("111, @carol")
    for platform in ("discord", "slack", "whatsapp"):
        child.expect(rf"Use {platform}\? \[y/N\]")
        child.sendline("n")
    child.expect("done")
    transcript = child.before
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert TOKEN not in transcript

    config = json.loads((crew_home / "config.json").read_text())
    telegram = config["channels"]["telegram"]
    assert telegram["enabled"] is True and telegram["allowFrom"] == ["111", "@carol"]
    assert telegram["token"] == "{{telegram_token}}"  # the value went to the vault
    listed = run_cli("secrets", "list", "--json", home=crew_home, env=VAULT)
    assert "telegram_token" in listed.stdout and TOKEN not in listed.stdout


def test_a_wrong_answer_is_explained_and_asked_again_and_enter_keeps_values(crew_home: Path) -> None:
    before = json.loads((crew_home / "config.json").read_text())
    child = spawn(crew_home, "--section", "model")
    child.expect(r"Model .*\[openai/fake-model\]")
    child.sendline("")  # Enter keeps the model
    child.expect(r"openai API key \(set, Enter keeps it\)")
    child.sendline("")
    child.expect(r"openai API base URL")
    child.sendline("")
    child.expect(r"Longest answer, in tokens \[1024\]")
    child.sendline("")
    child.expect("done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert json.loads((crew_home / "config.json").read_text()) == before  # nothing rewritten

    child = spawn(crew_home, "--section", "model")
    for _ in range(3):
        child.expect(r"\]: |\): ")
        child.sendline("")
    child.expect(r"Longest answer, in tokens")
    child.sendline("0")
    child.expect(r"invalid value for agents.defaults.maxTokens.*try again")
    child.expect(r"Longest answer, in tokens")
    child.sendline("512")
    child.expect("done")
    child.expect(pexpect.EOF)
    child.close()
    assert json.loads((crew_home / "config.json").read_text())["agents"]["defaults"]["maxTokens"] == 512

    child = spawn(crew_home, "--section", "memory")
    child.expect(r"Let the crew remember.*\[Y/n\]")
    child.sendline("y")
    child.expect(r"Embedding model")
    child.sendline("")
    child.expect("done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    done = run_cli("configure", "--section", "nonsense", home=crew_home)
    assert done.returncode == 1 and "unknown section" in done.stderr
