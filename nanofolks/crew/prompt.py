"""Build a bot's system prompt: who it is, how it sounds, what its job is, who else is in the room."""

from __future__ import annotations

from nanofolks.crew.crew import Bot, Crew


def system_prompt(
    bot: Bot, crew: Crew, room_name: str, room_type: str, members: list[str], compact: bool = False
) -> str:
    """The bot's whole persona; `compact` keeps only who it is and how it sounds, for small local models
    that read a long prompt slowly (SmolLM2 evaluates about 100 prompt tokens a second here)."""
    # The first line names the bot as "Name (@handle)": the whole crew relies on that to tell bots apart.
    title = f", {bot.title}" if bot.title else ""
    team = f" of the {crew.team_name}" if crew.team_name else ""
    lines = [f"You are {bot.name} (@{bot.handle}){title}{team}: the crew's {bot.role}."]
    if compact:
        voice = _first_paragraph(bot.soul, "Voice")
        lines += [f"Your voice: {voice}" if voice else "", f"Catchphrase: {bot.catchphrase}" if bot.catchphrase else "",
                  "Answer the user briefly and clearly, in character. Speak only for yourself."]
        return "\n".join(line for line in lines if line)
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
    lines += ["", "## Where you stand in the crew", *_standing(bot, crew)]
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


def _standing(bot: Bot, crew: Crew) -> list[str]:
    """Whom the bot reports to and who reports to it: the org decides who may delegate to whom."""
    boss = crew.bots.get(bot.supervisor)
    lines = [f"You report to @{boss.handle} ({boss.name}): escalate to them and report your results to them."
             if boss else "You lead the crew: you report to the user and may hand work to anyone in it."]
    reports = [crew.bots[h] for h in crew.reports(bot.handle) if crew.bots[h].supervisor == bot.handle]
    if reports:
        lines.append("Your reports (you may delegate to them): "
                     + ", ".join(f"@{r.handle} ({r.name}, {r.role})" for r in reports) + ".")
    return lines


def _first_paragraph(markdown: str, heading: str) -> str:
    """The first paragraph under `## heading` in a card, or ''."""
    _, found, rest = markdown.partition(f"## {heading}")
    if not found:
        return ""
    return rest.strip().split("\n\n", 1)[0].split("\n## ", 1)[0].strip()
