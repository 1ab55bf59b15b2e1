"""`nanofolks`: the root command. Heavy modules are imported inside commands, never here."""

from __future__ import annotations

import sys

import typer

from nanofolks.cli import channels as channels_cmd
from nanofolks.cli import chat, config_cmd, onboard, pairing, room, team
from nanofolks.cli import gateway as gateway_cmd
from nanofolks.cli import memory as memory_cmd
from nanofolks.cli import session as session_cmd

app = typer.Typer(
    name="nanofolks",
    help="Nanofolks: your crew's already on it. A crew of AI characters in your terminal and chats.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich costs more start-up than the rest of the CLI
)
app.command("onboard")(onboard.onboard)
app.command("chat")(chat.chat)
app.add_typer(config_cmd.app, name="config")
app.add_typer(room.app, name="room")
app.add_typer(team.team_app, name="team")
app.add_typer(team.bot_app, name="bot")
app.command("gateway")(gateway_cmd.gateway)
app.command("status")(gateway_cmd.status)
app.add_typer(pairing.app, name="pairing")
app.add_typer(memory_cmd.app, name="memory")
app.add_typer(channels_cmd.app, name="channels")
app.add_typer(session_cmd.app, name="session")


@app.command("version")
def version() -> None:
    """Print the version."""
    from nanofolks import __version__

    typer.echo(__version__)


def main() -> None:
    """Run the CLI; a user mistake or an unreachable service is one line on stderr, never a traceback."""
    try:
        code = app(standalone_mode=False)  # click returns a command's exit code here instead of exiting
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - sorted into user errors and bugs just below
        import click

        from nanofolks.cli.common import err_console, user_errors

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, user_errors()):
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)
        raise
