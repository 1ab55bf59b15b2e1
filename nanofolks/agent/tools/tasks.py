"""room_task: the current room's tasks (create, list, change status, hand off), as the calling bot."""

from __future__ import annotations

from typing import Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params
from nanofolks.rooms.tasks import TaskError
from nanofolks.store.tasks import PRIORITIES, STATUSES, Task


def describe(task: Task) -> str:
    due = f", due {task.due}" if task.due else ""
    return f"#{task.number} [{task.status}] {task.title} (@{task.owner}, {task.priority}{due})"


async def room_task(ctx: ToolContext, args: dict[str, Any]) -> str:
    room, tasks, actor = ctx.turn.room, ctx.tasks, ctx.bot
    action = args["action"]
    number = args.get("number")
    if action in ("status", "handoff") and number is None:
        raise ToolError(f"{action} needs the task's number")

    def act() -> str:
        if action == "list":
            found = tasks.list(room, args.get("owner"))
            return "\n".join(describe(t) for t in found) or f"no tasks in #{room.name}"
        if action == "create":
            if not args.get("title"):
                raise ToolError("create needs a title")
            task = tasks.add(room, args["title"], args.get("owner") or actor, args.get("priority", "medium"),
                             args.get("due"), actor=actor)
            return "created " + describe(task)
        if action == "status":
            if not args.get("status"):
                raise ToolError("status needs the new status")
            task = tasks.set_status(room, number, args["status"], actor=actor, reason=args.get("reason", ""))
            return "updated " + describe(task)
        if not args.get("owner"):
            raise ToolError("handoff needs the new owner")
        task = tasks.handoff(room, number, args["owner"], args.get("reason", ""), actor=actor)
        return "handed off " + describe(task)

    try:
        return await tasks.repo.db.run(act)
    except TaskError as exc:
        raise ToolError(str(exc)) from None


ROOM_TASK_TOOL = Tool(
    "room_task",
    "Track work in this room's task list: create a task, list tasks, change a task's status, or hand it "
    "off to another bot (with a reason).",
    params({
        "action": {"type": "string", "enum": ["create", "list", "status", "handoff"]},
        "title": {"type": "string", "description": "create: what needs doing"},
        "owner": {"type": "string", "description": "create/handoff: a bot handle (default: you); list: filter"},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "due": {"type": "string", "description": "create: YYYY-MM-DD"},
        "number": {"type": "integer", "description": "status/handoff: the task's number in this room"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "reason": {"type": "string", "description": "why (required for handoff)"},
    }, ["action"]),
    room_task,
)
