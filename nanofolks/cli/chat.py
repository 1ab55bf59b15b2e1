"""`nanofolks chat`: one message (-m) or an interactive session with /room, /rooms, /quit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import console, err_console, fail

if TYPE_CHECKING:
    from nanofolks.orchestrator.turn import FinalAnswer
    from nanofolks.services import Services

HELP = "/room NAME  switch room · /rooms  list rooms · /help · /quit"


def chat(
    message: str = typer.Option(None, "--message", "-m", help="Send one message and print the crew's answer."),
    room: str = typer.Option("general", "--room", "-r", help="The room to talk in."),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Show a single bot's answer as it is written."),
) -> None:
    """Talk to your crew. @coder, @all or @crew pick who answers; otherwise the leader coordinates."""
    import asyncio

    from nanofolks.cli.common import open_services

    services = open_services()
    current = services.rooms.get(room)
    if message is not None:
        if not message.strip():
            fail("the message is empty")
        answer = asyncio.run(_send(services, current, message, stream))
        if not any(p.ok for p in answer.parts):
            raise typer.Exit(1)
        return
    _interactive(services, current.name, stream)


async def _send(services: Services, room, text: str, stream: bool) -> FinalAnswer:  # noqa: ANN001
    from nanofolks.text import valid_text

    view = _AnswerView(services)
    # The terminal's edge: bytes that are not UTF-8 arrive as lone surrogates, which nothing can store.
    captured = services.keeper.capture(valid_text(text), "cli")  # a secret typed here is kept in the vault
    if captured.notice():
        err_console.print(captured.notice(), highlight=False, soft_wrap=True)
    await services.llm.ready()  # the library loads before the turn's deadline starts
    answer = await services.pipeline.handle(room, captured.text, on_token=view.token if stream else None)
    view.finish(answer)
    await services.pipeline.settle()  # a compaction the turn started finishes before the next prompt
    return answer


class _AnswerView:
    """Prints each bot's part under its label; a streamed part is shown as it arrives, not twice."""

    def __init__(self, services: Services):
        self.labels = {h: b.label for h, b in services.crew.bots.items()}
        self.streamed: set[str] = set()

    def token(self, bot: str, piece: str) -> None:
        if bot not in self.streamed:
            self.streamed.add(bot)
            console.print(f"[bold magenta]{self.labels.get(bot, '@' + bot)}[/]", highlight=False)
        console.file.write(piece)
        console.file.flush()

    def finish(self, answer: FinalAnswer) -> None:
        from rich.markdown import Markdown

        for part in answer.parts:
            if not part.ok:
                continue
            if part.bot in self.streamed:
                console.print()
                continue
            console.print(f"[bold magenta]{answer.labels.get(part.bot, '@' + part.bot)}[/]", highlight=False)
            console.print(Markdown(part.text))
        for card in answer.cards:
            console.print(Markdown(card))
        for note in answer.notes:
            err_console.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)


def _interactive(services: Services, room_name: str, stream: bool) -> None:
    import asyncio
    import readline  # noqa: F401 - gives input() line editing and history

    from nanofolks.rooms.rooms import RoomError

    console.print(f"[bold]{services.crew.team_name or 'Your crew'}[/] is listening in #{room_name}. {HELP}",
                  highlight=False)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                text = input(f"#{room_name} › ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if not text:
                continue
            if text in ("/quit", "/exit", "/q"):
                return
            if text == "/help":
                console.print(HELP)
            elif text == "/rooms":
                for r in services.rooms.list():
                    marker = "*" if r.name == room_name else " "
                    console.print(f"{marker} #{r.name} ({r.type}) {', '.join('@' + m for m in r.members)}",
                                  highlight=False)
            elif text.startswith("/room"):
                wanted = text[5:].strip()
                try:
                    room_name = services.rooms.get(wanted).name
                    console.print(f"now in #{room_name}")
                except RoomError as exc:
                    err_console.print(f"[red]{exc}[/]", highlight=False)
            elif text.startswith("/"):
                err_console.print(f"unknown command {text.split()[0]}; {HELP}", highlight=False)
            else:
                try:
                    loop.run_until_complete(_send(services, services.rooms.get(room_name), text, stream))
                except KeyboardInterrupt:
                    err_console.print("[yellow]interrupted; your message is kept in the room[/]")
    finally:
        loop.close()
