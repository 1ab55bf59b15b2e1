"""`nanofolks team list|show|set` and `nanofolks bot list|rename`."""

from __future__ import annotations

import typer

from nanofolks.cli.common import console, print_json

team_app = typer.Typer(help="The crew's team personality.", no_args_is_help=True)
bot_app = typer.Typer(help="The bots of your crew.", no_args_is_help=True)


@team_app.command("list")
def team_list() -> None:
    """The teams you can choose from."""
    from nanofolks.config.paths import templates_dir
    from nanofolks.crew.cards import read_card
    from nanofolks.crew.crew import available_teams

    for team in available_teams():
        fields, _ = read_card(templates_dir() / "teams" / team / "team.md")
        console.print(f"[bold]{team}[/]  {fields.get('name', '')} — {fields.get('vibe', '')}: "
                      f"[italic]\"{fields.get('example', '')}\"[/]", highlight=False)


@team_app.command("show")
def team_show() -> None:
    """The current team and its characters."""
    from nanofolks.cli.common import open_services

    crew = open_services().crew
    console.print(f"[bold]{crew.team_name}[/] ({crew.team}) — {crew.team_vibe}\n{crew.team_story}\n", highlight=False)
    _print_bots(crew)


@team_app.command("set")
def team_set(
    team: str,
    single: bool = typer.Option(None, "--single/--crew", help="Keep only the leader, or the whole crew."),
) -> None:
    """Switch the crew to another team (the bots' souls and identities are replaced; role cards kept)."""
    from nanofolks.config.loader import load_config, set_values, workspace_path
    from nanofolks.crew.crew import install_team

    config = load_config(resolve_secrets=False)
    single = config.crew.single if single is None else single
    crew = install_team(workspace_path(config), team, single=single)
    set_values({"crew.team": team, "crew.single": single}, resolve_secrets=False)
    console.print(f"[green]✓[/] your crew is now the {crew.team_name}")
    _print_bots(crew)


@bot_app.command("list")
def bot_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The crew's bots: handle, name, title, role."""
    from nanofolks.cli.common import open_services

    crew = open_services().crew
    if as_json:
        print_json([{"handle": b.handle, "name": b.name, "title": b.title, "emoji": b.emoji, "role": b.role,
                     "tools": b.tools} for b in crew.bots.values()])
        return
    _print_bots(crew)


@bot_app.command("rename")
def bot_rename(handle: str, name: str) -> None:
    """Give a bot a new display name (its @handle stays)."""
    from nanofolks.config.loader import load_config, workspace_path
    from nanofolks.crew.crew import rename_bot

    bot = rename_bot(workspace_path(load_config()), handle.lstrip("@"), name)
    console.print(f"[green]✓[/] @{bot.handle} is now {bot.name}", highlight=False)


def _print_bots(crew) -> None:  # noqa: ANN001 - a Crew, imported lazily
    for bot in crew.bots.values():
        console.print(f"  {bot.emoji} [bold]@{bot.handle}[/]  {bot.name}, {bot.title} — {bot.role}"
                      + (f'  [italic]"{bot.catchphrase}"[/]' if bot.catchphrase else ""), highlight=False)
