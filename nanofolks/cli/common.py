"""What every command shares: consoles, one-line errors, opening the services, JSON output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from nanofolks.services import Services

console = Console()
err_console = Console(stderr=True)


class UserError(Exception):
    """A mistake or an unreachable service: shown as one line on stderr, exit code 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def open_services() -> Services:
    from nanofolks.services import Services

    return Services.open()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean 'tell the user in one line', imported only when something failed."""
    from nanofolks.config.loader import ConfigError
    from nanofolks.crew.crew import CrewError
    from nanofolks.llm.client import LLMError
    from nanofolks.rooms.rooms import RoomError
    from nanofolks.rooms.tasks import TaskError
    from nanofolks.store.db import StoreError
    from nanofolks.store.rooms import ConflictError

    return (UserError, ConfigError, CrewError, LLMError, RoomError, TaskError, StoreError, ConflictError)
