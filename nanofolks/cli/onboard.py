"""`nanofolks onboard`: provider and model, team, then the workspace and the crew are created."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import console

if TYPE_CHECKING:
    from nanofolks.services import Services
    from nanofolks.store.rooms import Room

# (label, model string, provider key in config or None for the bundled local model)
PROVIDERS = [
    ("Bundled local model (offline, no key)", "local/smollm2", None),
    ("OpenAI", "openai/gpt-4o-mini", "openai"),
    ("Anthropic", "anthropic/claude-sonnet-4-5", "anthropic"),
    ("OpenRouter", "openrouter/openai/gpt-4o-mini", "openrouter"),
    ("OpenAI-compatible server (vLLM, Ollama, LM Studio)", "openai/my-model", "openai"),
]


def onboard(
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept defaults; ask nothing."),
    team: str = typer.Option(None, "--team", help="pirate_crew, space_crew, rock_band, executive_suite, swat_team, feral_clowder."),
    single: bool = typer.Option(False, "--single", help="One bot (the leader) instead of a crew of six."),
    model: str = typer.Option(None, "--model", help="A litellm model string, e.g. openai/gpt-4o-mini."),
    api_key: str = typer.Option(None, "--api-key", help="The provider's API key (or use its usual env var)."),
    api_base: str = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server."),
    warm: bool = typer.Option(True, "--warm/--no-warm",
                              help="With the local model: evaluate the leader's instructions now (seconds, once), "
                                   "so that the first message is answered as fast as the next ones."),
) -> None:
    """Set up Nanofolks: choose a model and a team, create the workspace and the crew."""
    from nanofolks.config.loader import load_config, save_config, set_values, workspace_path
    from nanofolks.config.paths import config_path
    from nanofolks.config.schema import Config
    from nanofolks.crew.crew import available_teams, install_team

    config = load_config(resolve_secrets=False)
    teams = available_teams()
    console.print("[bold]Nanofolks[/] — your crew's already on it.\n")
    provider: str | None = model.split("/", 1)[0] if model else None
    if not yes and model is None:
        model, provider = _ask_model(config.agents.defaults.model)
        if provider and api_key is None:
            api_key = typer.prompt(f"{provider} API key (empty: use the env var)", default="", hide_input=True,
                                   show_default=False) or None
        if model.startswith("openai/") and api_base is None and provider == "openai":
            api_base = typer.prompt("API base URL (empty for api.openai.com)", default="", show_default=False) or None
    if team is None:
        team = config.crew.team if yes else _ask_choice("Team", teams, config.crew.team)
    if not yes and not single:
        single = typer.confirm("Single bot instead of a crew of six?", default=config.crew.single)

    changes: dict[str, object] = {"crew.team": team, "crew.single": single}
    if model:
        changes["agents.defaults.model"] = model
    if provider and hasattr(config.providers, provider):
        if api_key:
            changes[f"providers.{provider}.apiKey"] = _keep_key(provider, api_key)
        if api_base:
            changes[f"providers.{provider}.apiBase"] = api_base
    crew = install_team(workspace_path(config), team, single=single)  # validates the team before saving
    if not config_path().exists():  # the first time, every setting with its default, to read and edit
        save_config(Config())
    set_values(changes, resolve_secrets=False)  # only these keys: the rest of the file stays as written
    config = load_config(resolve_secrets=False)

    from nanofolks.services import Services

    services = Services.open(config)
    database = services.db.location  # the home's SQLite file, or the PostgreSQL server (storage.url)
    try:
        general = services.rooms.general()
        warmed = _warm_leader(services, general) if warm else ""
    finally:
        services.close()
    console.print(f"[green]✓[/] config      {config_path()}")
    console.print(f"[green]✓[/] workspace   {workspace_path(config)}")
    console.print(f"[green]✓[/] database    {database}", highlight=False)
    console.print(f"[green]✓[/] model       {config.agents.defaults.model}")
    if warmed:
        console.print(warmed, highlight=False)
    console.print(f"\n[bold]{crew.team_name or team}[/] reporting for duty:")
    for bot in crew.bots.values():
        console.print(f"  {bot.emoji} [bold]{bot.name}[/] (@{bot.handle}), {bot.title} — {bot.role}", highlight=False)
    console.print('\nSay hello: [cyan]nanofolks chat -m "Hello!"[/]  or just [cyan]nanofolks chat[/]')


def _warm_leader(services: Services, room: Room) -> str:
    """The leader's instructions evaluated on the local model and saved (agent/warmup.py): a line saying
    so, or why not; nothing for a provider's model."""
    import asyncio

    from nanofolks.agent.warmup import warm_room
    from nanofolks.crew.crew import LEADER
    from nanofolks.llm.results import LLMError

    try:
        warmed = asyncio.run(warm_room(services.pipeline.runner, room, [LEADER]))
    except LLMError as exc:  # the first message reports it again, with the same words
        from rich.markup import escape  # the error may hold `[local]`, which is no markup

        return f"[yellow]![/] local model not warmed up: {escape(str(exc))}"
    if not warmed:
        return ""
    done = warmed[0]
    if not done.tokens:
        return f"[green]✓[/] warmed up   @{done.bot}'s instructions on {done.model} were saved already"
    return (f"[green]✓[/] warmed up   @{done.bot}'s instructions on {done.model} "
            f"({done.tokens:,} tokens, {done.seconds:.1f} s): the first message starts from them")


def _keep_key(provider: str, api_key: str) -> str:
    """The key goes to the vault and the config gets its {{name}}; without a vault, the key itself (hinted)."""
    from nanofolks.cli.common import err_console
    from nanofolks.secrets.keeper import ref, shared_keeper
    from nanofolks.secrets.vault import VaultError

    name = f"{provider}_api_key"
    try:
        shared_keeper().put(name, api_key, source=f"onboard providers.{provider}.apiKey")
    except VaultError as exc:
        err_console.print(f"hint: the API key is stored in plain text in config.json ({exc}); "
                          "`nanofolks secrets migrate` moves it to the vault later", highlight=False, soft_wrap=True)
        return api_key
    console.print(f"[green]✓[/] API key    in the vault as {ref(name)}", highlight=False)
    return ref(name)


def _ask_model(current: str) -> tuple[str, str | None]:
    labels = [label for label, _, _ in PROVIDERS]
    default = next((label for label, m, _ in PROVIDERS if m == current), labels[0])
    label = _ask_choice("Provider", labels, default)
    _, suggested, provider = next(p for p in PROVIDERS if p[0] == label)
    if provider is None:
        return suggested, None
    return typer.prompt("Model (litellm model string)", default=suggested), provider


def _ask_choice(title: str, options: list[str], default: str) -> str:
    for i, option in enumerate(options, start=1):
        console.print(f"  [cyan]{i}[/]. {option}", highlight=False)
    default_index = options.index(default) + 1 if default in options else 1
    while True:
        answer = typer.prompt(f"{title} (1-{len(options)})", default=str(default_index))
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return options[int(answer) - 1]
        if answer in options:
            return answer
        console.print(f"[red]Pick a number from 1 to {len(options)}.[/]")
