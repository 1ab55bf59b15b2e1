"""work_log: a bot reads its room's recent work log (tasks completed, tools run, delegations, files
written, routine runs) to pick up where the crew left off."""

from __future__ import annotations

from typing import Any

from nanofolks.agent.tools.registry import Tool, ToolContext, params
from nanofolks.routines.worklog import recent_text
from nanofolks.store.worklog import KINDS, WorkLogRepo


async def work_log(ctx: ToolContext, args: dict[str, Any]) -> str:
    room = ctx.turn.room
    repo = WorkLogRepo(ctx.tasks.repo.db)
    limit = int(args.get("limit", 20))
    entries = await repo.db.run(repo.list, room.id, args.get("bot", "").lstrip("@") or None, None, limit * 4)
    kinds = set(args.get("kinds") or KINDS)
    entries = [e for e in entries if e.kind in kinds][-limit:]
    return recent_text(entries) or f"the work log of #{room.name} is empty"


WORK_LOG_TOOL = Tool(
    "work_log",
    "Read this room's recent work log, oldest first: tasks completed, tools run (with results or errors), "
    "delegations, files written, routine runs. Use it to pick up where the crew left off.",
    params({
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "how many entries (default 20)"},
        "bot": {"type": "string", "description": "only this bot's entries"},
        "kinds": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}},
    }),
    work_log,
)
