"""`nanofolks config list|get|set|path`: dotted keys, JSON values, validated against the schema.

Secret fields (marked in the schema) are masked in everything printed, and `config set` of one keeps
the value in the vault and writes a `{{name}}` reference instead."""

from __future__ import annotations

import json
from typing import Any

import typer

from nanofolks.cli.common import console, err_console, print_json

app = typer.Typer(help="Show and change configuration (dotted keys, e.g. agents.defaults.model).", no_args_is_help=True)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        out: list[tuple[str, Any]] = []
        for k, v in data.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else k)
        return out
    return [(prefix, data)]


def _shown() -> dict[str, Any]:
    """The settings in effect (file, env overrides, defaults) as they may be printed: secret fields masked
    by their schema mark, and everything else through the sanitizer."""
    from nanofolks.config.loader import effective_dump, load_config
    from nanofolks.config.secret_fields import masked
    from nanofolks.secrets.sanitize import sanitize

    dump = masked(effective_dump(load_config(resolve_secrets=False)))
    return json.loads(sanitize(json.dumps(dump, ensure_ascii=False)))


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every setting in effect (file, env overrides, defaults), secrets masked."""
    from nanofolks.config.loader import read_raw
    from nanofolks.config.secret_fields import plain_secrets

    data = _shown()
    if as_json:
        print_json(data)
    else:
        for key, value in _flatten(data):
            console.print(f"[cyan]{key}[/] = {json.dumps(value, ensure_ascii=False)}", highlight=False)
    plain = [key for key, _ in plain_secrets(read_raw())]
    if plain:
        err_console.print(f"hint: {', '.join(plain)} in plain text in config.json; `nanofolks secrets migrate` "
                          "moves them to the vault", highlight=False, soft_wrap=True)


@app.command("get")
def get(key: str) -> None:
    """Print one setting (in effect), as JSON; a secret is masked."""
    from nanofolks.config.loader import get_value

    typer.echo(json.dumps(get_value(_shown(), key), ensure_ascii=False))


@app.command("set")
def set_(key: str, value: str) -> None:
    """Set one setting; VALUE is parsed as JSON when it parses ('["111"]', true, 3), else taken as text.
    A secret field's value goes to the vault and the config gets its {{name}}."""
    from nanofolks.config.loader import canonical_key, set_value
    from nanofolks.config.secret_fields import MASK, field_at, is_secret, reference_name
    from nanofolks.secrets.keeper import REF, ref, shared_keeper
    from nanofolks.secrets.sanitize import sanitize
    from nanofolks.secrets.vault import VaultError

    keys = canonical_key(key)
    field = field_at(keys)
    if field is None or not is_secret(field) or not value or REF.fullmatch(value.strip()):
        set_value(key, value)
        shown = sanitize(json.dumps(_parsed(value), ensure_ascii=False))
        console.print(f"[green]set[/] {key} = {shown}", highlight=False)
        return
    name = reference_name(".".join(keys))
    try:
        shared_keeper().put(name, value, source=f"config {'.'.join(keys)}")
    except VaultError as exc:
        set_value(key, value)
        console.print(f"[green]set[/] {key} = {MASK}", highlight=False)
        err_console.print(f"hint: stored in plain text in config.json, the vault is unavailable ({exc}); "
                          "`nanofolks secrets migrate` moves it later", highlight=False, soft_wrap=True)
        return
    set_value(key, ref(name))
    console.print(f"[green]set[/] {key} = {ref(name)} (the value is in the vault)", highlight=False)


@app.command("path")
def path() -> None:
    """Print where config.json lives."""
    from nanofolks.config.paths import config_path

    typer.echo(str(config_path()))


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
