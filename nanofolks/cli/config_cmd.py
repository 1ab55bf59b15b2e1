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
    from nanofolks.config.setting import apply_setting

    applied = apply_setting(key, value)
    console.print(f"[green]set[/] {key} = {applied.shown}", highlight=False)
    if applied.hint:
        err_console.print(f"hint: {applied.hint}", highlight=False, soft_wrap=True)


@app.command("path")
def path() -> None:
    """Print where config.json lives."""
    from nanofolks.config.paths import config_path

    typer.echo(str(config_path()))

