"""One setting changed as `config set` changes it, for the CLI and the dashboard alike: validated against the
schema (ConfigError names the key and what is wrong); a secret field's value goes to the vault and the
config gets its {{name}}. The value itself is never echoed for a secret."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Applied:
    key: str
    shown: str  # the value as it may be printed: a secret's reference or mask, never its value
    hint: str = ""  # a line worth telling (a secret kept in plain text because the vault is unavailable)


def apply_setting(key: str, value: str) -> Applied:
    """VALUE is parsed as JSON when it parses ('["111"]', true, 3), else taken as text."""
    from nanofolks.config.loader import canonical_key, set_value
    from nanofolks.config.secret_fields import MASK, field_at, is_secret, reference_name
    from nanofolks.secrets.keeper import REF, ref, shared_keeper
    from nanofolks.secrets.sanitize import sanitize
    from nanofolks.secrets.vault import VaultError

    keys = canonical_key(key)
    field = field_at(keys)
    if field is None or not is_secret(field) or not value or REF.fullmatch(value.strip()):
        set_value(key, value)
        return Applied(key, sanitize(json.dumps(parsed(value), ensure_ascii=False)))
    name = reference_name(".".join(keys))
    try:
        shared_keeper().put(name, value, source=f"config {'.'.join(keys)}")
    except VaultError as exc:
        set_value(key, value)
        return Applied(key, MASK, f"stored in plain text in config.json, the vault is unavailable ({exc}); "
                                  "`nanofolks secrets migrate` moves it later")
    set_value(key, ref(name))
    return Applied(key, f"{ref(name)} (the value is in the vault)")


def is_secret_key(key: str) -> bool:
    from nanofolks.config.loader import canonical_key
    from nanofolks.config.secret_fields import field_at, is_secret

    field = field_at(canonical_key(key))
    return field is not None and is_secret(field)


def parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
