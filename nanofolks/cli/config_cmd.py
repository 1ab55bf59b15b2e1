"""`nanofolks config list|get|set|path`: dotted keys, JSON values, validated against the schema."""

from __future__ import annotations

import json
from typing import Any

import typer

from nanofolks.cli.common import console, print_json

app = typer.Typer(help="Show and change configuration (dotted keys, e.g. agents.defaults.model).", no_args_is_help=True)

_SECRET_KEYS = ("apikey", "token", "secret", "password", "bottoken", "apptoken", "bridgetoken")


def _mask(data: Any, key: str = "") -> Any:
    if isinstance(data, dict):
        return {k: _mask(v, k) for k, v in data.items()}
    if isinstance(data, str) and data and key.lower().replace("_", "") in _SECRET_KEYS:
        return data[:3] + "…" + data[-4:] if len(data) > 10 else "****"
    return data


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        out: list[tuple[str, Any]] = []
        for k, v in data.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else k)
        return out
    return [(prefix, data)]


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every setting in effect (file, env overrides, defaults), secrets masked."""
    from nanofolks.config.loader import effective_dump, load_config

    data = _mask(effective_dump(load_config()))
    if as_json:
        print_json(data)
        return
    for key, value in _flatten(data):
        console.print(f"[cyan]{key}[/] = {json.dumps(value, ensure_ascii=False)}", highlight=False)


@app.command("get")
def get(key: str) -> None:
    """Print one setting (in effect), as JSON."""
    from nanofolks.config.loader import effective_dump, get_value, load_config

    typer.echo(json.dumps(get_value(effective_dump(load_config()), key), ensure_ascii=False))


@app.command("set")
def set_(key: str, value: str) -> None:
    """Set one setting; VALUE is parsed as JSON when it parses ('["111"]', true, 3), else taken as text."""
    from nanofolks.config.loader import canonical_key, set_value

    set_value(key, value)
    shown = _mask({canonical_key(key)[-1]: json.loads(value) if _is_json(value) else value})
    console.print(f"[green]set[/] {key} = {json.dumps(next(iter(shown.values())), ensure_ascii=False)}", highlight=False)


@app.command("path")
def path() -> None:
    """Print where config.json lives."""
    from nanofolks.config.paths import config_path

    typer.echo(str(config_path()))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
