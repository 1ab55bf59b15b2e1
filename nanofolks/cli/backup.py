"""`nanofolks export` and `nanofolks import`: a home's database, config and workspace to a folder and back.

Secrets never leave the vault: a config key written in clear is left out of the export (the import says which
to set again), a `{{name}}` reference is kept as the name it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

from nanofolks.cli.common import console, fail, print_json

OUT = typer.Option(..., "--out", "-o", help="A new or empty folder to write the export into.")
SOURCE = typer.Argument(..., help="A folder written by `nanofolks export`.")


def export(
    out: Path = OUT,
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl (one file per table), csv or sqlite."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Export rooms and their history, tasks and handoffs, work logs, memory, config and workspace."""
    from nanofolks.config import paths
    from nanofolks.store import backup

    _sqlite_home()
    if not paths.db_path().is_file():
        fail(f"nothing to export: no database at {paths.db_path()}")
    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty: export into a new folder")
    counts = backup.export(paths.db_path(), out, fmt)
    left_out = _export_config(paths.config_path(), out / "config.json")
    workspace = paths.home() / "workspace"
    if workspace.is_dir():
        shutil.copytree(workspace, out / "workspace", symlinks=True)
    if as_json:
        print_json({"out": str(out), "format": fmt, "tables": counts, "secrets_left_out": left_out})
        return
    console.print(f"exported {sum(counts.values())} rows from {len(counts)} tables to {out} ({fmt})",
                  highlight=False)
    for key in left_out:
        console.print(f"  left out {key} (a secret in clear; it stays on this machine)", highlight=False)


def import_(source: Path = SOURCE) -> None:
    """Import an export into this (fresh) home: database, config if there is none yet, workspace."""
    from nanofolks.config import paths
    from nanofolks.store import backup
    from nanofolks.store.db import Database

    _sqlite_home()
    if not source.is_dir():
        fail(f"{source} is not a folder written by `nanofolks export`")
    backup.read_manifest(source)
    paths.home().mkdir(parents=True, exist_ok=True)
    Database(paths.db_path()).close()  # create and migrate the target first
    counts = backup.import_into(paths.db_path(), source)
    if (source / "config.json").is_file() and not paths.config_path().exists():
        shutil.copyfile(source / "config.json", paths.config_path())
        paths.config_path().chmod(0o600)
    if (source / "workspace").is_dir():
        shutil.copytree(source / "workspace", paths.home() / "workspace", symlinks=True, dirs_exist_ok=True)
    console.print(f"imported {sum(counts.values())} rows from {len(counts)} tables into {paths.home()}",
                  highlight=False)
    _say_missing_secrets(paths.config_path())


def _sqlite_home() -> None:
    """Export and import read and write the home's SQLite file: a home on PostgreSQL has other tools."""
    from nanofolks.config.loader import load_config
    from nanofolks.store.backend import storage_url

    if not storage_url(load_config(resolve_secrets=False).storage.url).startswith("sqlite://"):
        fail("this home keeps its state in PostgreSQL (storage.url): back it up with pg_dump, see docs/storage.md")


def _export_config(config: Path, target: Path) -> list[str]:
    """Copy config.json without the secrets written in clear; returns the keys left out."""
    from nanofolks.config.secret_fields import raw_secrets

    if not config.is_file():
        return []
    raw = json.loads(config.read_text())
    left_out = []
    for path, value in list(raw_secrets(raw)):
        if value.startswith("{{") or "${" in value:
            continue  # a vault reference or an environment variable: a name, not a secret
        node = raw
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        left_out.append(".".join(path))
    target.write_text(json.dumps(raw, indent=2) + "\n")
    target.chmod(0o600)
    return left_out


def _say_missing_secrets(config: Path) -> None:
    """Name the vault entries the imported config refers to that this machine's vault lacks."""
    from nanofolks.config.secret_fields import references
    from nanofolks.secrets.vault import VaultError, open_vault

    if not config.is_file():
        return
    vault = open_vault()
    for name, keys in references(json.loads(config.read_text())).items():
        try:
            missing = vault.get(name) is None
        except VaultError as exc:
            console.print(f"  the config refers to the secret {name}; no vault to hold it yet: {exc}",
                          highlight=False, soft_wrap=True)
            continue
        if missing:
            console.print(f"  set the secret {name} (used by {', '.join(keys)}): `nanofolks secrets set {name}`",
                          highlight=False)
