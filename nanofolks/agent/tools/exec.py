"""exec: run a shell command in the workspace. Off unless `tools.execEnabled`; time-limited; async."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from typing import Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params, truncate_middle

MAX_OUTPUT_CHARS = 10_000
# Credentials in the gateway's environment must not reach commands a model wrote.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}


async def run_exec(ctx: ToolContext, args: dict[str, Any]) -> str:
    command: str = args["command"]
    if not command.strip():
        raise ToolError("the command is empty")
    return await run_in_workspace(ctx, command)


async def run_in_workspace(ctx: ToolContext, command: str | list[str], extra_env: dict[str, str] | None = None) -> str:
    """Run a shell line (str) or a program (argv list) in the workspace: timeout, output cap, scrubbed
    environment plus `extra_env`. Secrets go in `extra_env`, never argv: argv is world-readable (ps, /proc)."""
    for name, value in (extra_env or {}).items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ToolError(f"{name!r} is not a usable environment variable (no '=' or NUL, not empty)")
    timeout = ctx.config.tools.exec_timeout
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = dict(
        cwd=ctx.workspace, env=_env() | (extra_env or {}), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills its children too
    )
    if isinstance(command, str):
        proc = await asyncio.create_subprocess_shell(command, **options)
    else:
        proc = await asyncio.create_subprocess_exec(*command, **options)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise ToolError(f"the command timed out after {timeout:g} s and was stopped") from None
    except asyncio.CancelledError:  # the turn was cancelled: leave no command running
        _kill_group(proc.pid)
        raise
    text = truncate_middle(out.decode("utf-8", errors="replace"), MAX_OUTPUT_CHARS)
    return f"exit code {proc.returncode}\n{text}".rstrip()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


EXEC_TOOL = Tool(
    "exec",
    "Run a shell command in the crew's workspace and get its exit code and output (stdout and stderr).",
    params({"command": {"type": "string", "description": "The shell command line."}}, ["command"]),
    run_exec,
    enabled=lambda config: config.tools.exec_enabled,
    uses_secrets=True,
    disabled_reason="running commands is turned off for this crew (set tools.execEnabled to true to allow it)",
)
