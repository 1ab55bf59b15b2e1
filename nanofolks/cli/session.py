"""`nanofolks session ...`: how full a room's context is, compacting it, starting it afresh."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.context.room import RoomContext
    from nanofolks.services import Services

app = typer.Typer(help="A room's context: what the crew's models read of the conversation.", no_args_is_help=True)

RoomOpt = typer.Option("general", "--room", "-r", help="The room's name.")


def _context(services: Services) -> RoomContext:
    from nanofolks.context.room import RoomContext

    return RoomContext(services.config, services.crew, services.llm, services.db)


@app.command("status")
def status(room: str = RoomOpt, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Tokens the room's context takes, the window, the percent, the compaction mode and summaries."""
    services = open_services()
    usage = _context(services).usage(services.rooms.get(room))
    if as_json:
        print_json(usage.as_dict())
        return
    console.print(f"[bold]#{usage.room}[/]  {usage.tokens:,} of {usage.window - usage.reserved:,} tokens "
                  f"([bold]{usage.percent:.0f}%[/])", highlight=False)
    console.print(f"  window      {usage.window:,} ({usage.model}); {usage.reserved:,} kept for the reply and memory",
                  highlight=False)
    console.print(f"  persona     {usage.persona_tokens:,} tokens", highlight=False)
    console.print(f"  messages    {usage.messages} in the context, {usage.conversation_tokens:,} tokens", highlight=False)
    console.print(f"  compaction  {usage.mode}; {usage.summaries} summaries so far", highlight=False)


@app.command("compact")
def compact(
    room: str = RoomOpt,
    mode: str = typer.Option("", "--mode", help="summary or token-limit (default: context.compaction)."),
) -> None:
    """Compact the room's context now: its oldest messages become a summary (or are left out)."""
    import asyncio

    from nanofolks.cli.common import fail

    if mode not in ("", "summary", "token-limit"):
        fail(f"--mode must be summary or token-limit, not {mode!r}", code=2)
    services = open_services()
    result = asyncio.run(_context(services).compact(services.rooms.get(room), mode or None))
    if not result.done:
        console.print(result.reason, highlight=False)
        return
    console.print(f"[green]✓[/] #{room}: {result.reason}; they stay in the room and in memory search",
                  highlight=False)


@app.command("reset")
def reset(room: str = RoomOpt) -> None:
    """Start the room's context afresh: the crew reads only what comes next; the history is kept."""
    import asyncio

    services = open_services()
    asyncio.run(_context(services).reset(services.rooms.get(room)))
    console.print(f"[green]✓[/] #{room}: a new context; the history stays in the room and in memory search",
                  highlight=False)
