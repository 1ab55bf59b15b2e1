"""`nanofolks skills list|scan|show|approve|reject`: what the crew may use, and why not."""

from __future__ import annotations

from pathlib import Path

import typer

from nanofolks.cli.common import UserError, console, err_console, print_json

app = typer.Typer(help="Skills: scanned before they load; anything above low risk waits for your approval.",
                  no_args_is_help=True)


def _skills():  # noqa: ANN202 - imported lazily
    from nanofolks.cli.common import open_services

    return open_services().skills


def _row(skills, skill) -> dict[str, object]:  # noqa: ANN001
    return {"name": skill.name, "risk": skills.report(skill).risk, "status": skills.status(skill), "source": skill.source,
            "description": skill.description, "hash": skill.content_hash[:12]}


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every skill: name, risk, status (loaded / needs approval / blocked), source."""
    skills = _skills()
    rows = [_row(skills, s) for s in sorted(skills.skills.values(), key=lambda s: s.name)]
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            colour = {"loaded": "green", "needs approval": "yellow", "blocked": "red"}[str(row["status"])]
            console.print(f"[bold]{row['name']:<16}[/] [{colour}]{row['status']:<15}[/] risk {row['risk']:<8} "
                          f"{row['source']:<9} {row['description']}", highlight=False, soft_wrap=True)
    for problem in skills.problems:
        err_console.print(f"[yellow]warning:[/] {problem}", highlight=False, soft_wrap=True)


@app.command("scan")
def scan_(path: Path, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Scan a skill folder (or one file): its risk and each finding's file and line. Exit code 0 only for low."""
    from nanofolks.skills.scanner import scan

    if not path.exists():
        raise UserError(f"{path} does not exist")
    report = scan(path)
    if as_json:
        print_json(report.as_json())
    else:
        _print_report(report)
    raise typer.Exit(0 if report.risk == "low" else 1)


@app.command("show")
def show(name: str) -> None:
    """A skill's description, status, findings and which bots may use it."""
    skills = _skills()
    skill = skills.get(name)
    row = _row(skills, skill)
    console.print(f"[bold]{skill.name}[/] ({skill.source}, {skill.path})", highlight=False, soft_wrap=True)
    console.print(f"{skill.description}\nstatus {row['status']}, risk {row['risk']}, content {skill.content_hash}",
                  highlight=False, soft_wrap=True)
    from nanofolks.cli.common import open_services

    bots = [f"@{b.handle}" for b in open_services().crew.bots.values() if "*" in b.skills or skill.name in b.skills]
    console.print(f"may be used by: {', '.join(bots) or 'no bot (add it to a role card: skills: ...)'}",
                  highlight=False)
    if skill.scripts:
        console.print(f"scripts: {', '.join(skill.scripts)}", highlight=False)
    _print_report(skills.report(skill))


@app.command("approve")
def approve(name: str) -> None:
    """Let a skill load as it is now; any later edit revokes the approval."""
    skills = _skills()
    skill = skills.decide(name, "approved")
    console.print(f"[green]✓[/] {skill.name} approved (risk {skills.report(skill).risk}) at content "
                  f"{skill.content_hash[:12]}", highlight=False)


@app.command("reject")
def reject(name: str) -> None:
    """Block a skill as it is now (an edited version is scanned and asked about again)."""
    skill = _skills().decide(name, "rejected")
    console.print(f"[red]✗[/] {skill.name} blocked at content {skill.content_hash[:12]}", highlight=False)


def _print_report(report) -> None:  # noqa: ANN001
    console.print(f"risk: [bold]{report.risk}[/]", highlight=False)
    for f in report.findings:
        console.print(f"  {f.risk:<8} {f.file}:{f.line}  {f.rule}: {f.detail}", highlight=False, soft_wrap=True)
