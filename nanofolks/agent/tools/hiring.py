"""propose_hire and confirm_hire: the leader's hiring tools, for models that call tools. The hiring desk
(orchestrator/hiring.py) does the work; a hire is never applied unless this turn's message is the
agreement of the person who asked, in the room where it was proposed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params

if TYPE_CHECKING:
    from nanofolks.orchestrator.hiring import HiringDesk


def hiring_tools(desk: HiringDesk) -> list[Tool]:
    from nanofolks.orchestrator.hiring import reply_to_proposal

    async def propose(ctx: ToolContext, args: dict[str, Any]) -> str:
        if ctx.turn.desk_action == "hired":
            raise ToolError("the user just agreed to a hire; propose another one in a later message")
        return (await desk.propose(ctx.turn, [args])).show(ctx.turn)

    async def confirm(ctx: ToolContext, args: dict[str, Any]) -> str:
        if ctx.turn.desk_action == "hired":
            return f"Already done this turn:\n\n{ctx.turn.desk_card}"
        if reply_to_proposal(ctx.turn.text) != "agree":
            raise ToolError("the user has not agreed in this message: show the proposal and wait for their yes")
        return (await desk.confirm(ctx.turn)).show(ctx.turn)

    return [
        Tool("propose_hire", "Propose a new crew member when the user asks to hire someone. The code drafts the "
             "rest (name in the team's style, tools, model tier) from the role; anything you give refines it. "
             "Nobody is hired until the user agrees and you call confirm_hire.",
             params({
                 "role": {"type": "string", "description": "What they are, e.g. researcher"},
                 "focus": {"type": "string", "description": "What they do, e.g. watches industry trends"},
                 "name": {"type": "string", "description": "Optional character name in the team's style"},
                 "personality": {"type": "string", "description": "Optional: a few sentences of personality"},
                 "supervisor": {"type": "string", "description": "Optional handle they report to (default leader)"},
                 "tier": {"type": "string", "enum": ["simple", "medium", "complex", "reasoning", "coding"]},
             }, ["role"]),
             propose),
        Tool("confirm_hire", "Hire the proposal waiting in this room, after the user agreed to it in their "
             "latest message.", params({}), confirm),
    ]
