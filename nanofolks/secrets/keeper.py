"""Secrets in what people send and what tools print: kept in the vault, replaced by `{{name}}`; and the
reverse, `{{name}}` replaced by the value, only where a tool runs.

    capture(text)  -> the text with each detected secret kept in the vault and named `{{name}}`
    resolve(text)  -> the text with each `{{name}}` replaced by the vault's value (tools only)"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from nanofolks.secrets.detect import find
from nanofolks.secrets.sanitize import remember, sanitize
from nanofolks.secrets.vault import Entry, Vault, VaultError

log = logging.getLogger(__name__)

REF = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]{0,63})\s*\}\}")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def ref(name: str) -> str:
    return "{{" + name + "}}"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise VaultError(f"{name!r} is not a secret name: lower-case letters, digits and _, starting with a letter")
    return name


@dataclass
class Kept:
    name: str
    label: str  # "GitHub token"


@dataclass
class Captured:
    text: str  # what may be stored and shown to models
    kept: list[Kept] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # labels of secrets removed but not kept (no vault)
    why: str = ""  # why they were not kept

    def notice(self) -> str:
        """What the person is told, once, in their chat ('' when nothing was found)."""
        lines = []
        if self.kept:
            names = ", ".join(f"{k.label} as `{ref(k.name)}`" for k in self.kept)
            lines.append(f"🔐 I kept the {names} in the vault. The crew only ever sees the name; a tool gets "
                         "the value when it runs. `nanofolks secrets delete NAME` removes it.")
        if self.dropped:
            lines.append(f"🔐 I removed a {', '.join(self.dropped)} from your message and did not keep it: "
                         f"{self.why}.")
        return "\n".join(lines)


class Keeper:
    """The vault as the rest of the program uses it. Opening one teaches the sanitizer every stored value."""

    def __init__(self, vault: Vault):
        self.vault = vault
        self._names: dict[str, str] = {}  # value -> name
        try:
            for name, value in vault.values().items():
                self._learn(name, value)
        except VaultError as exc:
            log.warning("secrets vault unavailable: %s", exc)

    def _learn(self, name: str, value: str) -> None:
        self._names[value] = name
        remember(value, ref(name))

    def put(self, name: str, value: str, kind: str = "", source: str = "") -> None:
        """Store a secret under a name of the caller's choice (`secrets set`, `config set`, migrate)."""
        self.vault.set(Entry(check_name(name), kind, source, time.time()), value)
        self._learn(name, value)

    def forget(self, name: str) -> bool:
        """Delete a secret; False when there was none by that name."""
        value = self.vault.get(name)
        if not self.vault.delete(name):
            return False
        if value is not None:
            self._names.pop(value, None)
            remember(value)  # no longer a name to show, still never shown in clear
        return True

    def capture(self, text: str, source: str) -> Captured:
        """Keep every secret in `text` in the vault and return the text naming them instead."""
        findings = find(text)
        if not findings:
            return Captured(text)
        result = Captured("")
        out, at = [], 0
        for finding in findings:
            value = finding.value(text)
            out.append(text[at:finding.start])
            at = finding.end
            try:
                name = self._keep(value, finding.kind, source)
            except VaultError as exc:
                result.dropped.append(finding.label)
                result.why = str(exc)
                out.append(f"[redacted {finding.kind}]")
                continue
            if all(k.name != name for k in result.kept):
                result.kept.append(Kept(name, finding.label))
            out.append(ref(name))
        out.append(text[at:])
        result.text = "".join(out)
        return result

    def _keep(self, value: str, kind: str, source: str) -> str:
        known = self._names.get(value)
        if known is not None and self.vault.get(known) == value:
            return known
        taken = self.vault.entries()
        name, n = kind, 1
        while name in taken:
            n += 1
            name = f"{kind}_{n}"
        self.put(name, value, kind, source)
        log.info("kept a %s from %s in the vault as %s", kind, source, name)
        return name

    def resolve(self, text: str) -> str:
        """`{{name}}` -> the value, for a tool about to run. An unknown name is an error naming it."""
        def value(match: re.Match[str]) -> str:
            secret = self.vault.get(match.group(1))
            if secret is None:
                raise VaultError(f"no secret named {match.group(1)!r} in the vault (`nanofolks secrets list`)")
            return secret

        return REF.sub(value, text) if "{{" in text else text

    def screen(self, output: str, source: str) -> str:
        """A tool's output before anyone sees or stores it: new secrets kept, known ones named."""
        return sanitize(self.capture(output, source).text)


_shared: dict[tuple[str, ...], Keeper] = {}


def shared_keeper() -> Keeper:
    """The process's keeper for this home and vault settings (opening a vault derives a key: once)."""
    import os

    from nanofolks.config import paths
    from nanofolks.secrets.vault import BACKEND_VAR, PASSPHRASE_VAR, open_vault

    key = (str(paths.home()), os.environ.get(BACKEND_VAR, ""), os.environ.get(PASSPHRASE_VAR, ""))
    if key not in _shared:
        _shared[key] = Keeper(open_vault())
    return _shared[key]
