"""`nanofolks secrets set|list|delete|migrate`: the vault. Values are never printed."""

from __future__ import annotations

import sys

import typer

from nanofolks.cli.common import UserError, console, err_console, print_json

app = typer.Typer(help="Secrets kept in the vault (OS keyring or encrypted file); config refers to them as {{name}}.",
                  no_args_is_help=True)


@app.command("set")
def set_(name: str = typer.Argument(..., help="lower_case name, used as {{name}} in config and chat.")) -> None:
    """Store a secret: typed at a prompt that does not echo, or read from stdin (`... | nanofolks secrets set X`)."""
    from nanofolks.secrets.keeper import check_name, shared_keeper

    check_name(name)
    value = sys.stdin.read().strip() if not sys.stdin.isatty() else typer.prompt(
        f"value for {name}", hide_input=True, default="", show_default=False).strip()
    if not value:
        raise UserError("the value is empty: nothing stored")
    shared_keeper().put(name, value, source="cli")
    console.print(f"[green]✓[/] stored {name}; refer to it as {{{{{name}}}}}", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Names, where each came from and where it is used. Never values."""
    from nanofolks.config.loader import read_raw
    from nanofolks.config.secret_fields import references
    from nanofolks.secrets.keeper import shared_keeper

    keeper = shared_keeper()
    used = references(read_raw())
    rows = [{"name": e.name, "kind": e.kind, "source": e.source, "createdAt": e.created_at,
             "usedBy": used.get(e.name, [])} for e in sorted(keeper.vault.entries().values(), key=lambda e: e.name)]
    if as_json:
        print_json(rows)
        return
    err_console.print(f"vault: {keeper.vault.backend}", highlight=False, soft_wrap=True)
    if not rows:
        console.print("no secrets stored", highlight=False)
    for row in rows:
        where = ", ".join(row["usedBy"]) or "not referenced in config"
        console.print(f"[bold]{row['name']}[/]  {row['kind'] or 'set by hand'} from {row['source'] or '?'}; "
                      f"used by: {where}", highlight=False, soft_wrap=True)
    missing = sorted(set(used) - {r["name"] for r in rows})
    for name in missing:
        err_console.print(f"[yellow]warning:[/] config refers to {{{{{name}}}}} ({', '.join(used[name])}) "
                          "but the vault has no such secret", highlight=False, soft_wrap=True)


@app.command("delete")
def delete(name: str) -> None:
    """Remove a secret from the vault."""
    from nanofolks.config.loader import read_raw
    from nanofolks.config.secret_fields import references
    from nanofolks.secrets.keeper import shared_keeper

    if not shared_keeper().forget(name):
        raise UserError(f"no secret named {name!r} (`nanofolks secrets list`)")
    console.print(f"[green]✓[/] deleted {name}", highlight=False)
    users = references(read_raw()).get(name)
    if users:
        err_console.print(f"[yellow]warning:[/] config still refers to {{{{{name}}}}}: {', '.join(users)}",
                          highlight=False, soft_wrap=True)


@app.command("migrate")
def migrate() -> None:
    """Move every plain-text secret in config.json into the vault, leaving {{name}} references."""
    from nanofolks.config.loader import read_raw, save_config, set_in
    from nanofolks.config.secret_fields import plain_secrets, reference_name
    from nanofolks.secrets.keeper import ref, shared_keeper

    keeper = shared_keeper()
    raw = read_raw()
    moved = []
    for key, value in plain_secrets(raw):
        name = reference_name(key)
        keeper.put(name, value, source=f"config {key}")
        set_in(raw, key.split("."), ref(name))
        moved.append((key, name))
    if not moved:
        console.print("no plain-text secrets in config.json", highlight=False)
        return
    save_config(raw)
    for key, name in moved:
        console.print(f"[green]✓[/] {key} -> {{{{{name}}}}}", highlight=False)
    console.print(f"vault: {keeper.vault.backend}", highlight=False, soft_wrap=True)
