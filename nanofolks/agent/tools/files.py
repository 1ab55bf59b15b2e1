"""read_file, write_file, edit_file, list_dir: confined to the crew's workspace.

Every path is resolved to its real location (following `..` and symlinks) and must stay inside the
workspace's real location, so absolute paths elsewhere, `../` escapes and symlinks that point out
are all refused the same way.

Between people (docs/multiuser.md): `rooms/<room name>/` is one room's own folder. A turn of someone
other than the owner never reaches another room's folder, and in a direct room it writes only in its
own; the rest of the workspace is the crew's, shared. The owner's turns (no scope) reach everything."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params

if TYPE_CHECKING:
    from nanofolks.orchestrator.turn import Turn

MAX_READ_BYTES = 256_000
MAX_LIST_ENTRIES = 500
ROOMS_DIR = "rooms"  # rooms/<room name>/: the files of one room


def resolve(workspace: Path, path: str, turn: Turn | None = None) -> Path:
    """The real path `path` names, relative to the workspace; ToolError if it leads outside, or (for a
    `turn` of someone other than the owner) into another room's folder."""
    if not path.strip():
        raise ToolError("the path is empty")
    if "\x00" in path:
        raise ToolError("the path contains a NUL character")
    root = workspace.resolve()
    try:
        target = (root / Path(path).expanduser()).resolve()  # an absolute `path` replaces root here
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise ToolError(f"{quoted(path)} cannot be used as a path: {getattr(exc, 'strerror', None) or exc}") from None
    if target != root and not target.is_relative_to(root):
        raise ToolError(f"{quoted(path)} is outside the crew's workspace; use a path relative to the workspace")
    if turn is not None and turn.scope is not None:
        rooms, own = _room_folders(root, turn)
        if target == rooms or (target.is_relative_to(rooms) and not target.is_relative_to(own)):
            raise ToolError(f"{quoted(path)} holds other rooms' files; this room's own are in "
                            f"{ROOMS_DIR}/{turn.room.name}/")
    return target


def _room_folders(root: Path, turn: Turn) -> tuple[Path, Path]:
    """The real locations of the rooms' folders and of this turn's room's own."""
    rooms = (root / ROOMS_DIR).resolve()
    return rooms, rooms / turn.room.name


def quoted(path: str) -> str:
    """A path as the model is told it back: quoted, and cut when it is very long."""
    return repr(path if len(path) <= 120 else f"{path[:70]}...{path[-40:]}")


def writable(workspace: Path, path: str, turn: Turn | None = None) -> Path:
    """Like resolve(), and not the crew's own cards: a bot that could edit role cards could grant
    itself tools (permissions come from them), so those stay the user's to change. In someone else's
    direct room, only inside the room's own folder: what is written there is theirs, unread by others."""
    target = resolve(workspace, path, turn)
    if target.is_relative_to((workspace / "crew").resolve()):
        raise ToolError(f"{quoted(path)} is one of the crew's cards; only the user edits those")
    if turn is not None and turn.scope is not None and turn.room.type == "direct":
        own = _room_folders(workspace.resolve(), turn)[1]
        if not target.is_relative_to(own):
            raise ToolError(f"in this direct room files are written under {ROOMS_DIR}/{turn.room.name}/ "
                            f"(the crew's shared files are read-only here); {quoted(path)} is not")
    return target


def _shown(ctx: ToolContext, target: Path) -> str:
    rel = target.relative_to(ctx.workspace.resolve())
    return str(rel) if str(rel) != "." else "."


async def read_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    target = resolve(ctx.workspace, args["path"], ctx.turn)

    def read() -> str:
        if not target.exists():
            raise ToolError(f"no file {quoted(args['path'])} in the workspace")
        if target.is_dir():
            raise ToolError(f"{quoted(args['path'])} is a directory; use list_dir")
        with target.open("rb") as fh:
            data = fh.read(MAX_READ_BYTES + 1)
        if b"\x00" in data[:8192]:
            raise ToolError(f"{quoted(args['path'])} is a binary file")
        text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
        if len(data) > MAX_READ_BYTES:
            text += f"\n[... cut: the file is longer than {MAX_READ_BYTES} bytes]"
        return text

    return await asyncio.to_thread(read)


async def write_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    target = writable(ctx.workspace, args["path"], ctx.turn)
    content: str = args["content"]

    def write() -> int:
        if target.is_dir():
            raise ToolError(f"{quoted(args['path'])} is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        target.write_bytes(data)
        return len(data)

    size = await asyncio.to_thread(write)
    return f"wrote {size} bytes to {_shown(ctx, target)}"


async def edit_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    target = writable(ctx.workspace, args["path"], ctx.turn)
    old, new = args["old_text"], args["new_text"]
    if not old:
        raise ToolError("old_text is empty; to write a whole file use write_file")

    def edit() -> None:
        if not target.is_file():
            raise ToolError(f"no file {quoted(args['path'])} in the workspace")
        text = target.read_text(encoding="utf-8")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_text was not found in {quoted(args['path'])}; read the file and copy the text exactly")
        if count > 1:
            raise ToolError(f"old_text occurs {count} times in {quoted(args['path'])}; include more lines to make it unique")
        target.write_text(text.replace(old, new, 1), encoding="utf-8")

    await asyncio.to_thread(edit)
    return f"edited {_shown(ctx, target)}"


async def list_dir(ctx: ToolContext, args: dict[str, Any]) -> str:
    target = resolve(ctx.workspace, args.get("path") or ".", ctx.turn)

    def listing() -> str:
        if not target.is_dir():
            raise ToolError(f"no directory {quoted(str(args.get('path')))} in the workspace")
        entries = sorted(target.iterdir(), key=lambda p: p.name)
        lines = [p.name + ("/" if p.is_dir() else "") for p in entries[:MAX_LIST_ENTRIES]]
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(f"[... and {len(entries) - MAX_LIST_ENTRIES} more]")
        return "\n".join(lines) or "(empty)"

    return await asyncio.to_thread(listing)


_PATH = {"type": "string", "description": "A path relative to the crew's workspace."}

FILE_TOOLS = [
    Tool("read_file", "Read a text file from the crew's workspace.", params({"path": _PATH}, ["path"]), read_file),
    Tool("write_file", "Create or overwrite a text file in the crew's workspace (parent folders are created).",
         params({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]), write_file),
    Tool("edit_file", "Replace one exact, unique piece of text in a file of the crew's workspace.",
         params({"path": _PATH, "old_text": {"type": "string", "description": "Text to replace, copied exactly."},
                 "new_text": {"type": "string"}}, ["path", "old_text", "new_text"]), edit_file),
    Tool("list_dir", "List a folder of the crew's workspace (folders end with /).",
         params({"path": {**_PATH, "default": "."}}), list_dir),
]
