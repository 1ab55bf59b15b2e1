"""`nanofolks team list|show|set` and `nanofolks bot list|rename|create|retire|supervisor`."""

from __future__ import annotations

from pathlib import Path

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
def bot_list(as_json: bool = typer.Option(False, "--json", help="Print JSON (the org tree, retired bots included).")) -> None:
    """The crew's bots as an org chart: handle, name, title, role, whom each reports to; retired ones marked."""
    from nanofolks.cli.common import open_services
    from nanofolks.crew.org import flatten, org_tree

    services = open_services()
    tree = org_tree(services.crew, services.config)
    if as_json:
        print_json([{**node.as_dict(), "reports": [r.handle for r in node.reports],
                     "tools": services.crew.member(node.handle).tools}  # type: ignore[union-attr]
                    for _, node in flatten(tree)])
        return
    for depth, node in flatten(tree):
        bot = services.crew.member(node.handle)
        assert bot is not None
        boss = f" → reports to @{node.supervisor}" if node.supervisor else ""
        status = " [dim](retired)[/]" if node.retired else ""
        console.print(f"{'  ' * (depth + 1)}{bot.emoji} [bold]@{bot.handle}[/]  {bot.name}, {bot.title} — {bot.role}"
                      f"{boss}{status}", highlight=False)


@bot_app.command("create")
def bot_create(
    from_md: str = typer.Option(..., "--from-md", help="A bot card: frontmatter (handle, name, ...) and body."),
) -> None:
    """Hire a bot from a Markdown card, in every room at once (a running gateway sees it at its next message)."""
    from nanofolks.cli.common import fail, open_services
    from nanofolks.crew.hiring import parse_bot_file
    from nanofolks.orchestrator.hiring import HiringDesk

    services = open_services()
    desk = HiringDesk(services.config, services.crew, services.db)
    candidate = parse_bot_file(Path(from_md), services.crew)
    problem = desk.cap_problem(1)
    if problem:
        fail(problem)
    hired, failed = desk.hire([candidate], "cli", f"from {Path(from_md).name}")
    if failed:
        fail(f"could not hire @{failed[0][0]}: {failed[0][1]}")
    bot = hired[0]
    console.print(f"[green]✓[/] hired {bot.emoji} {bot.name} (@{bot.handle}), {bot.title}, "
                  f"reporting to @{bot.supervisor}", highlight=False)


@bot_app.command("retire")
def bot_retire(handle: str) -> None:
    """Retire a bot: it no longer answers or is dispatched; its files and history are kept."""
    from nanofolks.cli.common import open_services
    from nanofolks.crew.hiring import retire_bot
    from nanofolks.store.crew import CrewRepo

    services = open_services()
    handle = handle.lstrip("@").lower()
    moved = retire_bot(services.workspace, services.crew, handle)
    CrewRepo(services.db).record(handle, "retired", "cli", ", ".join(moved) and f"reports moved: {', '.join(moved)}")
    console.print(f"[green]✓[/] @{handle} is retired (its history is kept)"
                  + (f"; {', '.join('@' + h for h in moved)} now report to @{services.crew.bots[handle].supervisor}"
                     if moved else ""), highlight=False)


@bot_app.command("supervisor")
def bot_supervisor(handle: str, supervisor: str) -> None:
    """Set whom a bot reports to (it may then be handed work only by them, or the leader)."""
    from nanofolks.cli.common import open_services
    from nanofolks.crew.hiring import set_supervisor
    from nanofolks.store.crew import CrewRepo

    services = open_services()
    handle = handle.lstrip("@").lower()
    boss = set_supervisor(services.workspace, services.crew, handle, supervisor)
    CrewRepo(services.db).record(handle, "supervisor", "cli", boss)
    console.print(f"[green]✓[/] @{handle} now reports to @{boss}", highlight=False)


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
