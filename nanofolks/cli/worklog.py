"""`nanofolks worklog ...`: what the crew did: tasks completed, tools run, delegations, files, routines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import UserError, console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.services import Services
    from nanofolks.store.worklog import WorkEntry

app = typer.Typer(help="Work logs: what the crew did, room by room, with links to what it produced.",
                  no_args_is_help=True)

RoomOpt = typer.Option(None, "--room", "-r", help="Only this room.")
BotOpt = typer.Option(None, "--bot", help="Only this bot.")
OutOpt = typer.Option(None, "--out", "-o", help="Write to this file (default: print).")
SinceOpt = typer.Option(None, "--since", help="Only from this date on: YYYY-MM-DD or an ISO time.")


def _filters(services: Services, room: str | None, bot: str | None, since: str | None) -> dict:
    import datetime as dt

    room_id = services.rooms.get(room.lstrip("#")).id if room else None
    start = None
    if since:
        try:
            start = dt.datetime.fromisoformat(since).timestamp()
        except ValueError:
            raise UserError(f"invalid --since {since!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return {"room_id": room_id, "bot": bot.lstrip("@") if bot else None, "since": start}


@app.command("list")
def list_(room: str = RoomOpt, bot: str = BotOpt, since: str = SinceOpt,
          limit: int = typer.Option(50, "--limit", "-n", min=1, help="The newest N entries."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The newest entries, oldest first."""
    from nanofolks.store.worklog import WorkLogRepo

    services = open_services()
    entries = WorkLogRepo(services.db).list(**_filters(services, room, bot, since), limit=limit)
    _show(entries, as_json)


@app.command("search")
def search(query: str, room: str = RoomOpt, bot: str = BotOpt, since: str = SinceOpt,
           limit: int = typer.Option(20, "--limit", "-n", min=1),
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Entries matching words, best first (the memory search's keyword rules)."""
    from nanofolks.routines.worklog import search as search_log
    from nanofolks.store.worklog import WorkLogRepo

    services = open_services()
    entries = search_log(WorkLogRepo(services.db), query, limit, **_filters(services, room, bot, since))
    _show(entries, as_json)


@app.command("export")
def export(fmt: str = typer.Option("md", "--format", "-f", help="md, json or csv."),
           out: Path = OutOpt,
           room: str = RoomOpt, bot: str = BotOpt, since: str = SinceOpt) -> None:
    """The whole work log (or a filtered part), oldest first."""
    from nanofolks.routines.worklog import EXPORT_FORMATS
    from nanofolks.routines.worklog import export as render
    from nanofolks.store.worklog import WorkLogRepo

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    services = open_services()
    text = render(WorkLogRepo(services.db).list(**_filters(services, room, bot, since)), fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    console.print(f"[green]✓[/] work log written to {out}", highlight=False)


def _show(entries: list[WorkEntry], as_json: bool) -> None:
    from nanofolks.routines.worklog import as_dict

    if as_json:
        print_json([as_dict(e) for e in entries])
        return
    if not entries:
        console.print("no work log entries")
    for e in entries:
        row = as_dict(e)
        mark = "" if e.ok else " [red](failed)[/]"
        links = f"  [dim]{' '.join(e.artifacts)}[/]" if e.artifacts else ""
        console.print(f"{row['at']}  #{e.room or '-':<10} @{e.bot:<10} {e.kind:<10}{mark} {_escape(e.summary)}{links}",
                      highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
