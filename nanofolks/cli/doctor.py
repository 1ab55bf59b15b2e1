"""`nanofolks doctor`: check the setup, one line per part, the fix in words; exit code 1 on any FAIL."""

from __future__ import annotations

import typer

from nanofolks.cli.common import console

STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Versions, config, secrets, database, memory index, each enabled channel and the model."""
    from nanofolks import doctor as checks

    results = checks.run_checks()
    if as_json:
        typer.echo(checks.as_json(results))
    else:
        for check in results:
            line = f"[{STYLE[check.status]}]{check.status:<4}[/] {check.name:<20} {check.detail}"
            console.print(line, highlight=False, soft_wrap=True)
            if check.fix:
                console.print(f"{'':<26}fix: {check.fix}", highlight=False, soft_wrap=True)
    if any(c.status == "FAIL" for c in results):
        raise typer.Exit(1)
