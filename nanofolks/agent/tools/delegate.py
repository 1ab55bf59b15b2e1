"""delegate: the coordinator hands a sub-task to a specialist.

The sub-task becomes a room task owned by the specialist (created by the coordinator), the specialist
answers through the same runner and turn budget (it cannot delegate further: no bot-to-bot loops),
its answer is kept in the room, and the task ends `done`, or `blocked` when the specialist failed."""

from __future__ import annotations

from typing import Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params
from nanofolks.crew.org import may_delegate
from nanofolks.rooms.tasks import TaskError
from nanofolks.store.messages import Message

MAX_TITLE_CHARS = 200


async def delegate(ctx: ToolContext, args: dict[str, Any]) -> str:
    if ctx.run_bot is None:
        raise ToolError("a delegated task cannot be passed on; do it yourself")
    bot = ctx.crew.resolve(args["bot"].strip().lstrip("@"))
    if bot is None:
        raise ToolError(f"no bot named {args['bot']!r}; the crew: {', '.join('@' + h for h in ctx.crew.handles)}")
    if bot.handle == ctx.bot:
        raise ToolError("you cannot delegate to yourself; answer it yourself")
    if not may_delegate(ctx.crew, ctx.bot, bot.handle):
        below = ", ".join("@" + h for h in ctx.crew.reports(ctx.bot)) or "nobody"
        raise ToolError(f"@{bot.handle} does not report to you; you may delegate to: {below}")
    text = args["task"].strip()
    if not text:
        raise ToolError("the task is empty; say what the specialist should do")
    room, db = ctx.turn.room, ctx.tasks.repo.db
    title = " ".join(text.split())[:MAX_TITLE_CHARS]
    try:
        task = await db.run(lambda: ctx.tasks.add(room, title, bot.handle, actor=ctx.bot))
        await db.run(lambda: ctx.tasks.set_status(room, task.number, "in_progress", ctx.bot, "delegated"))
    except TaskError as exc:
        raise ToolError(str(exc)) from None
    reply = await ctx.run_bot(bot.handle, text)
    if not reply.ok:
        await db.run(lambda: ctx.tasks.set_status(room, task.number, "blocked", ctx.bot, reply.error[:500]))
        raise ToolError(f"@{bot.handle} could not do task #{task.number} ({reply.error}); it is marked blocked")
    await ctx.store(Message(room.id, bot.handle, "assistant", reply.text, kind="consult", platform=ctx.turn.platform,
                            turn_id=ctx.turn.turn_id, meta={"task": task.number, "delegated_by": ctx.bot}))
    await db.run(lambda: ctx.tasks.set_status(room, task.number, "done", bot.handle, "answered"))
    return f"@{bot.handle} ({bot.name}) finished task #{task.number}:\n\n{reply.text}"


DELEGATE_TOOL = Tool(
    "delegate",
    "Hand a sub-task to a specialist of the crew (e.g. coder, researcher, creative, social, auditor). "
    "It is tracked as a room task owned by them; you get their answer back to use in your reply.",
    params({
        "bot": {"type": "string", "description": "The specialist's handle, e.g. coder"},
        "task": {"type": "string", "description": "What to do, the context they need, and what done looks like"},
    }, ["bot", "task"]),
    delegate,
)
