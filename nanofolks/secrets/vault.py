"""Where secrets are kept: the OS keyring when there is one, else an encrypted file, never plain text.

- keyring: the `keyring` package (macOS Keychain, Windows Credential Manager, Secret Service on Linux).
  A keyring cannot list its entries, so the vault keeps an index (names and where each came from, no
  values) as one more keyring entry.
- file: `$NANOFOLKS_HOME/vault.enc`, Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key
  derived by scrypt from the passphrase in NANOFOLKS_VAULT_PASSPHRASE. For headless machines (servers,
  containers) where no keyring service runs. The passphrase never touches the disk.

NANOFOLKS_VAULT=keyring|file forces one; by default the keyring is used when a real one is available."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanofolks.config import paths

SERVICE = "nanofolks"
INDEX = "__nanofolks_index__"  # the keyring entry listing the vault's names
PASSPHRASE_VAR = "NANOFOLKS_VAULT_PASSPHRASE"
BACKEND_VAR = "NANOFOLKS_VAULT"
SCRYPT_N = 2**15  # about 60 ms here, once per process


class VaultError(Exception):
    """The vault cannot be used (no keyring, no passphrase, wrong passphrase) or has no such secret."""


@dataclass
class Entry:
    """What the vault says about a secret besides its value."""

    name: str
    kind: str = ""  # github_token, openai_api_key... ("" when set by hand)
    source: str = ""  # where it came from: "cli", "telegram:123", "config providers.openai.apiKey"
    created_at: float = 0.0

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "created_at": self.created_at}


class Vault:
    """The interface both backends share."""

    backend = ""  # for `nanofolks status` and `secrets list`

    def get(self, name: str) -> str | None:
        raise NotImplementedError

    def set(self, entry: Entry, value: str) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> bool:
        raise NotImplementedError

    def entries(self) -> dict[str, Entry]:
        raise NotImplementedError

    def values(self) -> dict[str, str]:
        """Every name and value: the sanitizer learns them so that they never leave in clear."""
        return {name: value for name in self.entries() if (value := self.get(name)) is not None}


class KeyringVault(Vault):
    def __init__(self) -> None:
        import keyring

        self._keyring = keyring.get_keyring()
        self.backend = f"keyring ({type(self._keyring).__module__}.{type(self._keyring).__name__})"

    def get(self, name: str) -> str | None:
        return self._keyring.get_password(SERVICE, name)

    def set(self, entry: Entry, value: str) -> None:
        self._keyring.set_password(SERVICE, entry.name, value)
        index = self._index()
        index[entry.name] = entry.meta()
        self._keyring.set_password(SERVICE, INDEX, json.dumps(index))

    def delete(self, name: str) -> bool:
        index = self._index()
        if name not in index:
            return False
        with contextlib.suppress(Exception):  # already gone from the keyring itself: the index still forgets it
            self._keyring.delete_password(SERVICE, name)
        del index[name]
        self._keyring.set_password(SERVICE, INDEX, json.dumps(index))
        return True

    def entries(self) -> dict[str, Entry]:
        return {name: Entry(name, **meta) for name, meta in self._index().items()}

    def _index(self) -> dict[str, dict[str, Any]]:
        text = self._keyring.get_password(SERVICE, INDEX)
        return json.loads(text) if text else {}


class FileVault(Vault):
    """One encrypted JSON file; every change is read-modify-write under a file lock (the gateway and the
    CLI may both write) and replaces the file atomically."""

    def __init__(self, path: Path, passphrase: str):
        if not passphrase:
            raise VaultError(f"the encrypted file vault needs a passphrase in {PASSPHRASE_VAR}")
        self.path = path
        self.backend = f"encrypted file ({path}, Fernet, key from {PASSPHRASE_VAR})"
        self._passphrase = passphrase.encode()
        self._fernet: Any = None
        self._salt = b""
        self._cache: tuple[float, dict[str, dict[str, Any]]] | None = None

    def get(self, name: str) -> str | None:
        item = self._read().get(name)
        return item["value"] if item else None

    def set(self, entry: Entry, value: str) -> None:
        with self._locked():
            data = self._read()
            data[entry.name] = {"value": value, **entry.meta()}
            self._write(data)

    def delete(self, name: str) -> bool:
        with self._locked():
            data = self._read()
            if data.pop(name, None) is None:
                return False
            self._write(data)
        return True

    def entries(self) -> dict[str, Entry]:
        return {name: Entry(name, item.get("kind", ""), item.get("source", ""), item.get("created_at", 0.0))
                for name, item in self._read().items()}

    def _key(self, salt: bytes) -> Any:
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        if self._fernet is None or salt != self._salt:
            key = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(self._passphrase)
            self._fernet, self._salt = Fernet(base64.urlsafe_b64encode(key)), salt
        return self._fernet

    def _read(self) -> dict[str, dict[str, Any]]:
        from cryptography.fernet import InvalidToken

        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        if self._cache is not None and self._cache[0] == stat.st_mtime_ns:
            return dict(self._cache[1])
        try:
            outer = json.loads(self.path.read_text(encoding="utf-8"))
            salt = base64.b64decode(outer["salt"])
            data = json.loads(self._key(salt).decrypt(outer["data"].encode()))
        except InvalidToken:
            raise VaultError(f"{PASSPHRASE_VAR} does not open {self.path} (wrong passphrase?)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise VaultError(f"{self.path} is damaged: {exc}") from None
        self._cache = (stat.st_mtime_ns, data)
        return dict(data)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        salt = self._salt or os.urandom(16)
        token = self._key(salt).encrypt(json.dumps(data).encode()).decode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "kdf": "scrypt", "salt": base64.b64encode(salt).decode(), "data": token}, out)
        tmp.replace(self.path)
        self._cache = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None  # another process may have written since
            yield
        finally:
            os.close(fd)


class NoVault(Vault):
    """No keyring and no passphrase: nothing can be kept, and every attempt says how to fix that."""

    def __init__(self, why: str):
        self.why = why
        self.backend = f"none ({why})"

    def get(self, name: str) -> str | None:
        raise VaultError(self.why)

    def set(self, entry: Entry, value: str) -> None:
        raise VaultError(self.why)

    def delete(self, name: str) -> bool:
        raise VaultError(self.why)

    def entries(self) -> dict[str, Entry]:
        return {}


def vault_path() -> Path:
    return paths.home() / "vault.enc"


def keyring_available() -> bool:
    """A real keyring service, not keyring's fail or null backend (what a headless Linux box has)."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:
        return False
    return not isinstance(keyring.get_keyring(), fail.Keyring | null.Keyring)


def open_vault() -> Vault:
    """The vault this machine uses: NANOFOLKS_VAULT when set, else the keyring when one works, else the
    encrypted file when a passphrase is given."""
    wanted = os.environ.get(BACKEND_VAR, "").strip().lower()
    passphrase = os.environ.get(PASSPHRASE_VAR, "")
    if wanted not in ("", "keyring", "file"):
        raise VaultError(f"{BACKEND_VAR} must be 'keyring' or 'file', not {wanted!r}")
    if wanted == "keyring" or (not wanted and keyring_available()):
        if not keyring_available():
            raise VaultError(f"{BACKEND_VAR}=keyring but no keyring service is available here")
        return KeyringVault()
    if passphrase:
        return FileVault(vault_path(), passphrase)
    hint = f"set {PASSPHRASE_VAR} to use the encrypted file vault (docs/security.md)"
    if vault_path().exists():
        return NoVault(f"{vault_path()} exists but {PASSPHRASE_VAR} is not set")
    return NoVault(f"no OS keyring service here; {hint}")
