"""`nanofolks`: the root command. Heavy modules are imported inside commands, never here."""

from __future__ import annotations

import sys

import typer

from nanofolks.cli import backup, chat, config_cmd, configure, doctor, onboard, pairing, room, team
from nanofolks.cli import channels as channels_cmd
from nanofolks.cli import dashboard as dashboard_cmd
from nanofolks.cli import gateway as gateway_cmd
from nanofolks.cli import memory as memory_cmd
from nanofolks.cli import metrics as metrics_cmd
from nanofolks.cli import routines as routines_cmd
from nanofolks.cli import routing as routing_cmd
from nanofolks.cli import secrets as secrets_cmd
from nanofolks.cli import session as session_cmd
from nanofolks.cli import skills as skills_cmd
from nanofolks.cli import storage as storage_cmd
from nanofolks.cli import worklog as worklog_cmd

app = typer.Typer(
    name="nanofolks",
    help="Nanofolks: your crew's already on it. A crew of AI characters in your terminal and chats.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich costs more start-up than the rest of the CLI
)


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    # Bare `nanofolks` is a request for help, not a mistake: `no_args_is_help` exits 2 since click 8.2.
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


app.command("onboard")(onboard.onboard)
app.command("chat")(chat.chat)
app.add_typer(config_cmd.app, name="config")
app.add_typer(room.app, name="room")
app.add_typer(team.team_app, name="team")
app.add_typer(team.bot_app, name="bot")
app.command("gateway")(gateway_cmd.gateway)
app.command("status")(gateway_cmd.status)
app.add_typer(dashboard_cmd.app, name="dashboard")
app.add_typer(pairing.app, name="pairing")
app.add_typer(memory_cmd.app, name="memory")
app.add_typer(channels_cmd.app, name="channels")
app.add_typer(routing_cmd.app, name="routing")
app.command("metrics")(metrics_cmd.metrics)
app.command("configure")(configure.configure)
app.command("doctor")(doctor.doctor)
app.command("export")(backup.export)
app.command("import")(backup.import_)
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(session_cmd.app, name="session")
app.add_typer(skills_cmd.app, name="skills")
app.add_typer(routines_cmd.app, name="routines")
app.add_typer(worklog_cmd.app, name="worklog")
app.add_typer(storage_cmd.app, name="storage")


@app.command("version")
def version() -> None:
    """Print the version."""
    from nanofolks import __version__

    typer.echo(__version__)


def main() -> None:
    """Run the CLI. A usage mistake is typer's own short usage message and exit code 2 (typer shows it in
    standalone mode, whichever click it uses: typer 0.29 bundles its own as `typer._click`); a user error
    or an unreachable service is one line on stderr and exit code 1; only a bug shows a traceback."""
    try:
        app(prog_name="nanofolks")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - sorted into user errors and bugs just below
        from nanofolks.cli.common import err_console, user_errors

        if isinstance(exc, user_errors()):
            from nanofolks.secrets.sanitize import sanitize

            err_console.print(f"[bold red]error:[/] {sanitize(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(1)
        raise
