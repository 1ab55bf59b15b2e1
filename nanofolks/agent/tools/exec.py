"""exec: run a shell command in the workspace. Off unless `tools.execEnabled`; bounded in time and output.

- The output is read as it comes, never buffered whole: the head and the tail are kept, and a command
  that writes more than MAX_OUTPUT_BYTES in all is stopped (`yes` used to fill gigabytes of memory).
- At the deadline the command's whole process group is killed. The output pipe is ours, not asyncio's,
  so waiting for the exit never depends on a pipe that a killed (or escaped) process left unread.
- A command that timed out, or was running when the process died, is recorded for its turn: a turn
  re-run after a restart is told so instead of running it again blindly."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import time
from typing import Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params
from nanofolks.secrets.keeper import REF, Keeper, ref
from nanofolks.secrets.vault import VaultError
from nanofolks.store.db import Database

HEAD_BYTES = TAIL_BYTES = 5_000  # what the model sees of a long output
MAX_OUTPUT_BYTES = 1 << 20  # a command writing more is stopped
CHUNK = 64 * 1024
# Credentials in the gateway's environment must not reach commands a model wrote.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}


class Output:
    """The head and the tail of a stream, and how much went by in between."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = HEAD_BYTES - len(self.head)
        self.head += chunk[:room]
        self.tail += chunk[room:] if room > 0 else chunk
        del self.tail[:-TAIL_BYTES]

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {cut} bytes cut ...]\n" if cut else ""
        return (bytes(self.head).decode("utf-8", errors="replace") + middle
                + bytes(self.tail).decode("utf-8", errors="replace"))


async def run_exec(ctx: ToolContext, args: dict[str, Any]) -> str:
    command: str = args["command"]
    if not command.strip():
        raise ToolError("the command is empty")
    line, env = secrets_to_env(command, ctx.keeper)
    runs = ExecRuns(ctx.db) if ctx.db is not None else None
    turn_id = ctx.turn.turn_id
    if runs is None:
        return await run_in_workspace(ctx, line, env)
    earlier = await ctx.db.run(runs.start, turn_id, command)  # type: ignore[union-attr]
    if earlier:
        raise ToolError(f"this exact command {earlier} earlier in this turn, so it was not run again; "
                        "try something quicker or with less output")
    try:  # a cancelled run (the crew stopping) stays `running`: the re-run turn is told, not repeating it
        result = await run_in_workspace(ctx, line, env)
    except Stopped as exc:
        await ctx.db.run(runs.finish, turn_id, command, exc.status)  # type: ignore[union-attr]
        raise
    await ctx.db.run(runs.finish, turn_id, command, "done")  # type: ignore[union-attr]
    return result


def secrets_to_env(command: str, keeper: Keeper | None) -> tuple[str, dict[str, str]]:
    """The command with each `{{name}}` made a reference to an environment variable that holds the secret,
    quoted for where it stands (bare, in '...' or in "..."), and those variables. The value never appears
    on the command line, which any local user can read (ps, /proc/PID/cmdline)."""
    if keeper is None or "{{" not in command:
        return command, {}
    env: dict[str, str] = {}
    out, quote, i = [], "", 0
    while i < len(command):
        found = REF.match(command, i)
        if found:
            name = found.group(1)
            var = f"NANOFOLKS_SECRET_{name.upper()}"
            try:
                env[var] = keeper.resolve(ref(name))
            except VaultError as exc:
                raise ToolError(str(exc)) from None
            out.append({"": f'"${{{var}}}"', '"': f"${{{var}}}", "'": f"'\"${{{var}}}\"'"}[quote])
            i = found.end()
            continue
        char = command[i]
        if char == "\\" and quote != "'":  # an escaped character keeps its meaning: take both as they are
            out.append(command[i:i + 2])
            i += 2
            continue
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        out.append(char)
        i += 1
    return "".join(out), env


class Stopped(ToolError):
    """The command was stopped (`status`: timed_out | too_much_output)."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


async def run_in_workspace(ctx: ToolContext, command: str | list[str], extra_env: dict[str, str] | None = None) -> str:
    """Run a shell line (str) or a program (argv list) in the workspace: timeout, output cap, scrubbed
    environment plus `extra_env`. Secrets go in `extra_env`, never argv: argv is world-readable (ps, /proc)."""
    for name, value in (extra_env or {}).items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ToolError(f"{name!r} is not a usable environment variable (no '=' or NUL, not empty)")
    timeout = ctx.config.tools.exec_timeout
    status, out, code = await _run(command, ctx, timeout, _env() | (extra_env or {}))
    if status == "timed_out":
        raise Stopped(f"the command timed out after {timeout:g} s and was stopped; its output so far:\n"
                      f"{out.text()}".rstrip(), status)
    if status == "too_much_output":
        raise Stopped(f"the command wrote more than {MAX_OUTPUT_BYTES // 1024} KB and was stopped; the start "
                      f"and end of its output:\n{out.text()}".rstrip(), status)
    return f"exit code {code}\n{out.text()}".rstrip()


async def _run(command: str | list[str], ctx: ToolContext, timeout: float,
               env: dict[str, str]) -> tuple[str, Output, int | None]:
    """(done | timed_out | too_much_output, the output, the exit code)."""
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    options: dict[str, Any] = dict(
        cwd=ctx.workspace, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=write_fd,
        start_new_session=True,  # its own process group: a kill reaches its children too
    )
    try:
        if isinstance(command, str):
            proc = await asyncio.create_subprocess_shell(command, **options)
        else:
            proc = await asyncio.create_subprocess_exec(*command, **options)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2 * CHUNK)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(read_fd, "rb", buffering=0))
    out, status = Output(), "done"
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(CHUNK):
                out.add(chunk)
                if out.total > MAX_OUTPUT_BYTES:
                    status = "too_much_output"
                    break
            if status == "done":
                await proc.wait()
    except TimeoutError:
        status = "timed_out"
    finally:  # also when the turn is cancelled: no command outlives its call
        transport.close()
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
    return status, out, proc.returncode


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ExecRuns:
    """Commands run per turn (exec_runs): a turn re-run after a restart must not repeat one that hung.
    A command is known by its hash: with its {{secrets}} resolved, it must not be stored."""

    def __init__(self, db: Database):
        self.db = db

    def start(self, turn_id: str, command: str) -> str:
        """Record the run; '' when it may go ahead, else what happened to it earlier in this turn."""
        command = _digest(command)
        with self.db.write() as conn:
            row = conn.execute("SELECT status FROM exec_runs WHERE turn_id = ? AND command_hash = ?",
                               (turn_id, command)).fetchone()
            if row is not None and row["status"] != "done":
                return {"running": "was running when the crew was stopped",
                        "timed_out": "timed out", "too_much_output": "wrote too much output"}.get(row["status"],
                                                                                                row["status"])
            conn.execute("INSERT INTO exec_runs (turn_id, command_hash, status, started_at)"
                         " VALUES (?, ?, 'running', ?) ON CONFLICT (turn_id, command_hash) DO UPDATE SET"
                         " status = 'running', started_at = excluded.started_at", (turn_id, command, time.time()))
        return ""

    def finish(self, turn_id: str, command: str, status: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE exec_runs SET status = ?, ended_at = ? WHERE turn_id = ? AND command_hash = ?",
                         (status, time.time(), turn_id, _digest(command)))


def _digest(command: str) -> str:
    return hashlib.sha256(command.encode("utf-8", "surrogatepass")).hexdigest()


EXEC_TOOL = Tool(
    "exec",
    "Run a shell command in the crew's workspace and get its exit code and output (stdout and stderr).",
    params({"command": {"type": "string", "description": "The shell command line."}}, ["command"]),
    run_exec,
    enabled=lambda config: config.tools.exec_enabled,  # {{secrets}}: resolved into the environment, by run_exec
    disabled_reason="running commands is turned off for this crew (set tools.execEnabled to true to allow it)",
)
