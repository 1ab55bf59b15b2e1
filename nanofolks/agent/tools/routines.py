"""routine: the leader schedules, lists and removes routines of the room it is talking in ("remind me
every weekday at 9 to stretch"). A routine made in a chat belongs to that chat's room, and the chat is
mapped to the room if it was not, so that the answers come back to it. The gateway picks it up within
its rescan period (RESCAN in routines/scheduler.py)."""

from __future__ import annotations

from typing import Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params
from nanofolks.routines.schedule import ScheduleError, from_options
from nanofolks.routines.service import RoutineError, RoutineService


async def routine(ctx: ToolContext, args: dict[str, Any]) -> str:
    rooms = ctx.tasks.rooms
    service = RoutineService(ctx.config, rooms.repo.db, rooms, ctx.crew)
    room = ctx.turn.room
    action = args["action"]

    def act() -> str:
        if action == "list":
            found = service.repo.list(room.id)
            return "\n".join(f"{r.id}: {r.name!r} {r.schedule} ({'on' if r.enabled else 'off'}) {r.message}"
                             for r in found) or f"no routines in #{room.name}"
        if action == "remove":
            if args.get("id") is None:
                raise ToolError("remove needs the routine's id (list shows them)")
            if service.get(args["id"]).room_id != room.id:
                raise ToolError(f"routine {args['id']} belongs to another room")
            service.remove(args["id"])
            return f"removed routine {args['id']}"
        for needed in ("name", "message"):
            if not args.get(needed):
                raise ToolError(f"create needs a {needed}")
        schedule = from_options(args.get("schedule"), args.get("every"), args.get("at"))
        made = service.add(args["name"], args["message"], schedule, room.name, args.get("bot", ""),
                           args.get("tz", ""), created_by=f"@{ctx.bot}")
        if ctx.turn.chat and rooms.repo.room_for_chat(*ctx.turn.chat.split(":", 1)) is None:
            rooms.map_chat(room.name, ctx.turn.chat)  # the answers come back to the chat that asked
        nxt = service.local_time(made, service.next_due(made))
        return f"created routine {made.id} {made.name!r} in #{room.name}: {made.schedule}, next run {nxt}"

    try:
        return await rooms.repo.db.run(act)
    except (RoutineError, ScheduleError) as exc:
        raise ToolError(str(exc)) from None


ROUTINE_TOOL = Tool(
    "routine",
    "Schedule a recurring message for the crew in this room (a reminder, a daily summary...), list this "
    "room's routines, or remove one. Each run is answered by the crew and sent to this room's chats.",
    params({
        "action": {"type": "string", "enum": ["create", "list", "remove"]},
        "name": {"type": "string", "description": "create: a short name"},
        "message": {"type": "string", "description": "create: what the crew is told each time, e.g. "
                                                     "'Remind the user to stretch.'"},
        "schedule": {"type": "string", "description": "create: cron 'minute hour day month weekday', e.g. "
                                                      "'0 9 * * 1-5' for weekdays at 9:00"},
        "every": {"type": "string", "description": "create, instead of schedule: an interval such as 30m or 2h"},
        "at": {"type": "string", "description": "create, instead of schedule: every day at HH:MM"},
        "bot": {"type": "string", "description": "create: the bot who answers (default: the room's usual)"},
        "tz": {"type": "string", "description": "create: IANA time zone (default: the crew's)"},
        "id": {"type": "integer", "description": "remove: the routine's id"},
    }, ["action"]),
    routine,
)
