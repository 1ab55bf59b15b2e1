"""`nanofolks storage ...`: where the crew's state lives (SQLite or PostgreSQL), and moving it."""

from __future__ import annotations

from pathlib import Path

import typer

from nanofolks.cli.common import console, fail, print_json

app = typer.Typer(help="Where the crew's state lives: SQLite (the default) or PostgreSQL (docs/storage.md).",
                  no_args_is_help=True)
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
ToOpt = typer.Option(..., "--to", help="The PostgreSQL database: postgresql://user:password@host:port/db.")
FromOpt = typer.Option(None, "--from", help="The SQLite file to copy (default: this home's).")


@app.command("status")
def status(as_json: bool = JsonOpt) -> None:
    """Which backend this home uses (storage.url or NANOFOLKS_STORAGE_URL), where, and its migrations."""
    from nanofolks.config.loader import load_config
    from nanofolks.store.backend import open_database, storage_url
    from nanofolks.store.storage import status as store_status

    db = open_database(storage_url(load_config().storage.url))
    try:
        info = store_status(db)
    finally:
        db.close()
    if as_json:
        print_json(info)
        return
    console.print(f"backend      {info['backend']}  {info['location']}", highlight=False)
    console.print(f"size         {info['bytes'] / 1e6:.1f} MB", highlight=False)
    console.print(f"migrations   {info['migrations']} applied, latest {info['latest']}", highlight=False)
    if info["unknown_migrations"]:
        console.print(f"[yellow]newer than this version:[/] {', '.join(info['unknown_migrations'])}", highlight=False)


@app.command("migrate")
def migrate(to: str = ToOpt, source: Path = FromOpt, as_json: bool = JsonOpt) -> None:
    """Copy this home's SQLite database into PostgreSQL. Run it again after an interruption: it goes on
    where it stopped. Every table's rows are counted on both sides at the end."""
    from nanofolks.config import paths
    from nanofolks.store.postgres import PgDatabase
    from nanofolks.store.storage import copy_home

    if not to.startswith(("postgresql://", "postgres://")):
        fail("--to must be a postgresql:// URL (e.g. postgresql://nanofolks@db.example:5432/nanofolks)")
    source = source or paths.db_path()
    target = PgDatabase(to)
    shown: dict[str, int] = {}

    def progress(table: str, copied: int, total: int) -> None:
        # A line per table once copied, and one per tenth of a big one meanwhile: as readable in a log.
        step = max(total // 10, 1)
        if copied == total or (copied and copied // step > shown.get(table, 0) // step):
            console.print(f"  {table:<28} {copied:>9,} / {total:,}", highlight=False)
            shown[table] = copied

    try:
        counts = copy_home(source, target, None if as_json else progress)
    finally:
        target.close()
    differ = [c for c in counts if not c.ok]
    if as_json:
        print_json({"from": str(source), "to": target.location, "ok": not differ,
                    "tables": {c.table: {"source": c.source, "target": c.target} for c in counts}})
    if differ:
        fail("counts differ: " + ", ".join(f"{c.table} {c.source} here, {c.target} there" for c in differ)
             + " (was something writing to the home? run the command again)")
    if not as_json:
        rows = sum(c.source for c in counts)
        console.print(f"[green]✓[/] {rows:,} rows in {len(counts)} tables copied to {target.location};"
                      " every count matches", highlight=False)
        console.print("next: nanofolks config set storage.url <the URL>  (then start the gateway)", highlight=False)
