"""Work log entries from what bots do, and the work log read back: listed, searched, exported.

Entries for completed tasks are written by the task store (same transaction as the change); routine
runs and heartbeats write their own; everything a bot does through a tool comes through `tool_entry`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any

from nanofolks.store.worklog import WorkEntry, WorkLogRepo

FILE_TOOLS = ("write_file", "edit_file")
EXPORT_FORMATS = ("md", "json", "csv")


def tool_entry(room_id: int, bot: str, tool: str, arguments: dict[str, Any], result: str, ok: bool,
               turn_id: str) -> WorkEntry:
    """One tool run as a work log entry: a file written, a delegation, or any other tool with its result."""
    first = result.strip().splitlines()[0] if result.strip() else ""
    if tool in FILE_TOOLS and ok:
        path = str(arguments.get("path", ""))
        return WorkEntry(room_id, bot, "file", f"{'wrote' if tool == 'write_file' else 'edited'} {path}", first,
                         artifacts=[f"file:{path}"], turn_id=turn_id)
    if tool == "delegate":
        to = str(arguments.get("bot", "")).lstrip("@")
        task = " ".join(str(arguments.get("task", "")).split())
        return WorkEntry(room_id, bot, "delegation", f"delegated to @{to}: {task}", result, ok=ok,
                         artifacts=_task_refs(result), turn_id=turn_id)
    shown = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return WorkEntry(room_id, bot, "tool", f"{tool} {shown}" if arguments else tool, result, ok=ok, turn_id=turn_id)


def _task_refs(result: str) -> list[str]:
    return [f"task:#{n}" for n in dict.fromkeys(re.findall(r"task #(\d+)", result))]


def as_dict(entry: WorkEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": _when(entry.created_at), "room": entry.room, "bot": entry.bot, "kind": entry.kind,
            "summary": entry.summary, "ok": entry.ok, "artifacts": entry.artifacts, "detail": entry.detail,
            "turn": entry.turn_id}


def search(repo: WorkLogRepo, query: str, limit: int = 20, room_id: int | None = None,
           bot: str | None = None, since: float | None = None) -> list[WorkEntry]:
    """Full-text search with memory search's query rules (each meaningful word, any may match)."""
    from nanofolks.memory.search import fts_query

    match = fts_query(query)
    return repo.search(match, limit, room_id, bot, since) if match else []


def export(entries: list[WorkEntry], fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    rows = [as_dict(e) for e in entries]
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(as_dict(WorkEntry(None, "", "", ""))))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "artifacts": " ".join(row["artifacts"])})
        return out.getvalue()
    lines = ["# Work log", ""]
    for row in rows:
        mark = "" if row["ok"] else " (failed)"
        links = f" [{', '.join(row['artifacts'])}]" if row["artifacts"] else ""
        lines.append(f"- {row['at']} #{row['room'] or '-'} @{row['bot']} {row['kind']}{mark}: {row['summary']}{links}")
    return "\n".join(lines) + "\n"


def recent_text(entries: list[WorkEntry]) -> str:
    """A room's recent entries as a few lines a bot reads (the `work_log` tool)."""
    lines = []
    for e in entries:
        mark = "" if e.ok else " (failed)"
        links = f" [{', '.join(e.artifacts)}]" if e.artifacts else ""
        lines.append(f"{_when(e.created_at)} @{e.bot} {e.kind}{mark}: {e.summary}{links}")
    return "\n".join(lines)


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")
