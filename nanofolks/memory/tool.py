"""The `search_memory` tool: the crew searches what it remembers (entries and past messages) in the rooms
the asking person talks in, and the crew-wide notes (every room, for the owner).

Register it with `runner.tools.register(search_memory_tool(services.memory))`; a role card must list
`search_memory` for a bot to be offered it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params

if TYPE_CHECKING:
    from nanofolks.memory.service import MemoryService

PARAMETERS = params({
    "query": {"type": "string", "minLength": 1, "description": "what to look for, in any words or language"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "how many results (default 5)"},
    "room": {"type": "string", "description": "only this room (default: every room)"},
    "bot": {"type": "string", "description": "only what this bot said or learnt"},
    "days": {"type": "number", "minimum": 0, "description": "only the last N days"},
}, ["query"])


def search_memory_tool(memory: MemoryService) -> Tool:
    async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
        from nanofolks.memory.service import MemoryError_

        since = (dt.datetime.now().timestamp() - float(args["days"]) * 86400) if args.get("days") else None
        try:
            hits = await asyncio.to_thread(memory.search, args["query"], int(args.get("limit", 5)), args.get("room"),
                                           args.get("bot", "").lstrip("@") or None, since, None, True,
                                           ctx.turn.scope)  # only the asking person's rooms
        except MemoryError_ as exc:
            raise ToolError(str(exc)) from None
        if not hits:
            return "nothing found in memory"
        return json.dumps([{"text": h.item.text[:1000], "source": f"{h.item.source}:{h.item.id}",
                            "room": h.item.room, "author": h.item.author,
                            "date": dt.datetime.fromtimestamp(h.item.created_at).strftime("%Y-%m-%d %H:%M")}
                           for h in hits], ensure_ascii=False)

    return Tool("search_memory", "Search what the crew remembers: notes, facts, decisions and past messages "
                "from every room and platform. Matches meaning, names and numbers.", PARAMETERS, run)
