"""The tool registry: each tool's JSON-schema parameters, who may use it, and a safe way to run it.

A tool never crashes a turn: bad arguments, refused paths, timeouts and exceptions all come back
as a result text starting with "error:" that the model reads and can act on."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanofolks.config.schema import Config
from nanofolks.secrets.sanitize import sanitize

if TYPE_CHECKING:
    from nanofolks.crew.crew import Bot, Crew
    from nanofolks.orchestrator.turn import BotReply, Turn
    from nanofolks.rooms.tasks import Tasks
    from nanofolks.secrets.keeper import Keeper
    from nanofolks.store.db import Database
    from nanofolks.store.messages import Message

log = logging.getLogger(__name__)


class ToolError(Exception):
    """A tool refused or failed; the message goes back to the model as the result."""


# Runs a specialist for a delegated sub-task: (bot handle, task text) -> its reply.
RunBot = Callable[[str, str], Awaitable["BotReply"]]


@dataclass
class ToolContext:
    """What a tool may touch during one bot's answer: the workspace, the room, its tasks."""

    config: Config
    workspace: Path
    crew: Crew
    turn: Turn
    bot: str  # the handle of the bot calling the tool
    tasks: Tasks
    store: Callable[[Message], Awaitable[None]]  # add a message to the room's history
    run_bot: RunBot | None = None  # set only where delegation is allowed (the leader, not a specialist)
    db: Database | None = None  # for tools that keep records of their own (exec's runs per turn)
    keeper: Keeper | None = None  # the vault: resolves {{name}} for tools that use secrets, screens outputs


Handler = Callable[[ToolContext, dict[str, Any]], Awaitable[str]]


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of type "object"
    run: Handler
    enabled: Callable[[Config], bool] = field(default=lambda _config: True)
    disabled_reason: str = ""  # what the model is told when it calls a tool that config turned off
    # The arguments whose {{name}} references become the vault's values as it runs (never one that ends up on
    # a command line: any local user can read those).
    uses_secrets: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling form, which litellm translates for every provider."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass
class Outcome:
    text: str
    ok: bool


class ToolRegistry:
    def __init__(self, tools: list[Tool] | None = None):
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool, replace: bool = False) -> None:
        """Add a tool (e.g. memory's `search_memory`). A role card must still list it for a bot to get it."""
        if tool.name in self._tools and not replace:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        if tool.parameters.get("type") != "object":
            raise ValueError(f"tool {tool.name!r}: parameters must be a JSON schema of type object")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def for_bot(self, bot: Bot, config: Config, can_delegate: bool, has_reports: bool = False) -> list[Tool]:
        """The tools a bot is offered: listed on its role card, registered, and turned on in config. A bot
        with reports gets `delegate` even when its card predates them (the leader's own card decides for it)."""
        extra = ["delegate"] if has_reports and bot.supervisor and "delegate" not in bot.tools else []
        names = [*bot.tools, *extra]
        tools = [self._tools[n] for n in names if n in self._tools and self._tools[n].enabled(config)]
        return [t for t in tools if can_delegate or t.name != "delegate"]

    async def execute(self, name: str, arguments: dict[str, Any], allowed: list[Tool], ctx: ToolContext) -> Outcome:
        tool = self._tools.get(name)
        if tool is None:
            return _error(f"there is no tool named {name!r}; available: {_names(allowed)}")
        if tool.name == "delegate" and ctx.run_bot is None:
            return _error("only the crew's coordinator can delegate, and a delegated task cannot be passed on")
        if not tool.enabled(ctx.config):
            return _error(tool.disabled_reason or f"the {name} tool is turned off in this crew's config")
        if tool not in allowed:
            return _error(f"@{ctx.bot} may not use {name}; your tools: {_names(allowed)}")
        if "_raw" in arguments and len(arguments) == 1:  # the model's arguments were not valid JSON
            return _error(f"the arguments for {name} were not valid JSON: {str(arguments['_raw'])[:200]}")
        problem = validate(tool.parameters, arguments)
        if problem:
            return _error(f"bad arguments for {name}: {problem}")
        try:
            outcome = Outcome(await tool.run(ctx, _with_secrets(tool, arguments, ctx)), True)
        except ToolError as exc:
            outcome = _error(str(exc))
        except Exception as exc:  # a bug in a tool must not end the turn; the model and the log both hear of it
            line = describe_failure(exc, ctx.workspace)
            log.warning("tool %s failed: %s", name, line)  # no traceback: in the terminal the user would see it
            log.debug("tool %s failed", name, exc_info=True)
            outcome = _error(f"{name} failed: {line}")
        # Screened before anyone sees or stores it: new secrets kept in the vault, known ones named.
        outcome.text = ctx.keeper.screen(outcome.text, f"tool {name}") if ctx.keeper else sanitize(outcome.text)
        return outcome


def _with_secrets(tool: Tool, arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """The arguments a tool runs with: {{name}} -> the secret, only in the arguments that take one, only now."""
    if not tool.uses_secrets or ctx.keeper is None:
        return arguments
    from nanofolks.secrets.vault import VaultError

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return ctx.keeper.resolve(value)  # type: ignore[union-attr]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    try:
        return {key: resolve(value) if key in tool.uses_secrets else value for key, value in arguments.items()}
    except VaultError as exc:
        raise ToolError(str(exc)) from None


def validate(schema: dict[str, Any], arguments: dict[str, Any]) -> str:
    """'' when the arguments fit the schema, else the most relevant problem in one line."""
    import jsonschema  # 50 ms to import: only when a tool is called

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(arguments))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def describe_failure(exc: Exception, workspace: Path) -> str:
    """One line saying what went wrong, without host paths: a path inside the workspace is shown relative
    to it, any other is not shown."""
    root = str(workspace.resolve())
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if isinstance(exc.filename, str):
            inside = exc.filename == root or exc.filename.startswith(root + os.sep)
            text += f": {os.path.relpath(exc.filename, root)}" if inside else " (a path outside the workspace)"
    else:
        text = f"{type(exc).__name__}: {exc}".replace(root + os.sep, "").replace(root, ".")
    return " ".join(text.split())[:300]


def _error(message: str) -> Outcome:
    return Outcome(f"error: {message}", False)


def _names(tools: list[Tool]) -> str:
    return ", ".join(t.name for t in tools) or "none"


def params(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A JSON schema for a tool's arguments; unknown keys are refused so typos surface."""
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


def dump_arguments(arguments: dict[str, Any]) -> str:
    """A canonical form of a call's arguments: equal calls give equal strings (repeat detection)."""
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False)
