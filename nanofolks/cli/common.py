"""What every command shares: consoles, one-line errors, opening the services, JSON output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from nanofolks.services import Services


class _LazyConsole:
    """A rich Console created on first use: importing rich costs more than `nanofolks --help` itself."""

    def __init__(self, stderr: bool = False):
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return getattr(self._console, name)


console: Console = _LazyConsole()  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


class UserError(Exception):
    """A mistake or an unreachable service: shown as one line on stderr, exit code 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def open_services() -> Services:
    """The services for one command, closed when the process exits (the memory worker finishes its
    batch and saves the index; a thread still inside hnswlib at exit would abort the process).
    Commands never close them themselves: this is the one place."""
    import atexit

    from nanofolks.services import Services

    services = Services.open()
    atexit.register(services.close)
    return services


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean 'tell the user in one line', imported only when something failed."""
    from nanofolks.channels.base import ChannelError
    from nanofolks.config.loader import ConfigError
    from nanofolks.crew.crew import CrewError
    from nanofolks.llm.client import LLMError
    from nanofolks.memory.embeddings import EmbedderError
    from nanofolks.memory.service import MemoryError_
    from nanofolks.rooms.rooms import RoomError
    from nanofolks.rooms.tasks import TaskError
    from nanofolks.routines.schedule import ScheduleError
    from nanofolks.routines.service import RoutineError
    from nanofolks.secrets.vault import VaultError
    from nanofolks.skills.skills import SkillError
    from nanofolks.store.db import StoreError
    from nanofolks.store.rooms import ConflictError

    return (UserError, ChannelError, EmbedderError, MemoryError_, ConfigError, CrewError, LLMError, RoomError, TaskError,
            StoreError, ConflictError, VaultError, SkillError, RoutineError, ScheduleError)
