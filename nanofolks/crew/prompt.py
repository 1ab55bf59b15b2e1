"""Build a bot's system prompt: who it is, how it sounds, what its job is, who else is in the room."""

from __future__ import annotations

from nanofolks.crew.crew import Bot, Crew


def system_prompt(bot: Bot, crew: Crew, room_name: str, room_type: str, members: list[str]) -> str:
    # The first line names the bot as "Name (@handle)": the whole crew relies on that to tell bots apart.
    title = f", {bot.title}" if bot.title else ""
    team = f" of the {crew.team_name}" if crew.team_name else ""
    lines = [f"You are {bot.name} (@{bot.handle}){title}{team}: the crew's {bot.role}."]
    if crew.team_story:
        lines += ["", "## Your team", crew.team_story]
    if bot.soul:
        lines += ["", "## Your soul", bot.soul]
    extras = []
    if bot.catchphrase:
        extras.append(f"Catchphrase: {bot.catchphrase}")
    if bot.quirks:
        extras.append("Quirks: " + "; ".join(bot.quirks))
    if bot.relationship:
        extras.append(f"With the crew: {bot.relationship}")
    if extras:
        lines += ["", "## Identity", *extras]
    if bot.role_card:
        lines += ["", "## Your role card", bot.role_card]
    others = [crew.bots[h] for h in members if h in crew.bots and h != bot.handle]
    if others:
        lines += ["", f"## Who else is in room #{room_name} ({room_type})"]
        lines += [f"- @{o.handle}: {o.name}, {o.role}" for o in others]
    lines += [
        "",
        "## How to answer",
        "- Stay in character, but a clear and correct answer always comes first.",
        "- Speak only for yourself; never write lines for other crew members.",
        "- The conversation shows other bots' messages prefixed with their handle; the user is the person.",
    ]
    return "\n".join(lines)
