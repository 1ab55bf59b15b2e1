"""`nanofolks routines ...`: messages the crew receives on a schedule (run by `nanofolks gateway`)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import typer

from nanofolks.cli.common import console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.routines.service import RoutineService
    from nanofolks.store.routines import Routine, Run

app = typer.Typer(help="Routines: messages the crew gets on a schedule, answered in their room and sent to "
                       "its chats. `nanofolks gateway` runs them.", no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="Print JSON.")


def _service() -> RoutineService:
    from nanofolks.routines.service import RoutineService

    return RoutineService.of(open_services())


@app.command("add")
def add(
    name: str = typer.Option(..., "--name", help="A short name."),
    message: str = typer.Option(..., "--message", help="What the crew is told each time."),
    schedule: str = typer.Option(None, "--schedule", help="A cron expression: minute hour day month weekday, "
                                                          "e.g. '0 9 * * 1-5'."),
    every: str = typer.Option(None, "--every", help="An interval instead: 30m, 2h, 1d."),
    at: str = typer.Option(None, "--at", help="Every day at this time instead: 09:00."),
    room: str = typer.Option("general", "--room", "-r", help="The room it runs in; its chats get the answer."),
    bot: str = typer.Option("", "--bot", help="The bot who answers (default: whoever the room's rules pick)."),
    tz: str = typer.Option("", "--tz", help="IANA time zone of the schedule (default: routines.timezone, "
                                           "else the machine's)."),
    quiet: bool = typer.Option(False, "--quiet", help="Wait while a conversation is live in the room (bounded)."),
) -> None:
    """Add a routine."""
    from nanofolks.routines.schedule import ScheduleError, from_options
    from nanofolks.routines.service import RoutineError

    try:
        text = from_options(schedule, every, at)
    except ScheduleError as exc:
        raise RoutineError(str(exc)) from None
    service = _service()
    routine = service.add(name, message, text, room, bot, tz, quiet)
    console.print(f"[green]✓[/] routine {routine.id} {routine.name!r} in #{routine.room}: {routine.schedule} "
                  f"(next {service.local_time(routine, service.next_due(routine))})", highlight=False)


@app.command("list")
def list_(as_json: bool = JsonOpt) -> None:
    """Every routine, its schedule and when it runs next."""
    service = _service()
    routines = service.repo.list()
    rows = [_row(service, r) for r in routines]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no routines (add one with `nanofolks routines add`)")
    for r in rows:
        state = "on " if r["enabled"] else "off"
        console.print(f"[bold]{r['id']:>3}[/] {state} {r['name']:<20} #{r['room']:<12} {r['schedule']:<16} "
                      f"next {r['next'] or '-'}  {r['message'][:50]}", highlight=False, soft_wrap=True)


@app.command("remove")
def remove(routine_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Delete a routine and its run records."""
    _service().remove(routine_id)
    console.print(f"[green]✓[/] routine {routine_id} removed")


@app.command("enable")
def enable(routine_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Turn a routine back on."""
    routine = _service().set_enabled(routine_id, True)
    console.print(f"[green]✓[/] routine {routine.id} {routine.name!r} enabled", highlight=False)


@app.command("disable")
def disable(routine_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Pause a routine (kept, not run)."""
    routine = _service().set_enabled(routine_id, False)
    console.print(f"[green]✓[/] routine {routine.id} {routine.name!r} disabled", highlight=False)


@app.command("run")
def run(routine_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JsonOpt) -> None:
    """Run a routine now, here (no gateway needed): the answer is printed, kept in the room, and queued for
    the room's chats (sent by the gateway, at once if it is running)."""
    import asyncio
    import time

    from nanofolks.routines.delivery import last_known_targets

    service = _service()
    routine = service.get(routine_id)
    targets = last_known_targets(service.config, service.db)
    outcome = asyncio.run(service.run(routine, time.time(), "manual", targets))
    if outcome is None:
        run = service.repo.runs(routine_id, 1)[0]
        from nanofolks.cli.common import UserError

        raise UserError(f"routine {routine_id} failed: {run.error}")
    if as_json:
        print_json({"run": outcome.run.id, "answer": outcome.answer, "delivered_to": outcome.delivered_to,
                    "note": outcome.note})
        return
    console.print(outcome.answer, highlight=False, markup=False)
    chats = ", ".join(outcome.delivered_to)
    console.print(f"[dim]run {outcome.run.id}: " + (f"queued for {chats}" if chats else outcome.note or "no chat mapped to "
                  f"#{routine.room}") + "[/]", highlight=False)


@app.command("history")
def history(routine_id: int = typer.Argument(..., metavar="ID"),
            limit: int = typer.Option(20, "--limit", "-n", min=1), as_json: bool = JsonOpt) -> None:
    """A routine's runs, newest first: when, how it was triggered, what happened."""
    service = _service()
    service.get(routine_id)
    runs = service.repo.runs(routine_id, limit)
    if as_json:
        print_json([_run_row(r) for r in runs])
        return
    if not runs:
        console.print("no runs yet")
    for r in runs:
        row = _run_row(r)
        where = f" → {', '.join(r.delivered_to)}" if r.delivered_to else ""
        note = f"  ({r.error})" if r.error else ""
        console.print(f"{row['due']}  {r.trigger:<8} {r.status:<9}{where}{note}", highlight=False, soft_wrap=True)


def _row(service: RoutineService, r: Routine) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "room": r.room, "schedule": r.schedule, "tz": service.tz(r) or "local",
            "bot": r.bot, "message": r.message, "enabled": r.enabled, "quiet": r.quiet, "created_by": r.created_by,
            "next": service.local_time(r, service.next_due(r))}


def _run_row(r: Run) -> dict[str, Any]:
    return {"id": r.id, "due": _when(r.due_at), "trigger": r.trigger, "status": r.status,
            "delivered_to": r.delivered_to, "answer": r.answer, "error": r.error,
            "finished": _when(r.finished_at)}


def _when(at: float | None) -> str | None:
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S") if at else None
