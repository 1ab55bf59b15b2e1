"""Step 5, final: one answer for the user, each part labelled, with what the user should know."""

from __future__ import annotations

from nanofolks.crew.crew import Crew
from nanofolks.orchestrator.turn import BotReply, FinalAnswer, Plan, Tags, Turn


def final(turn: Turn, tags: Tags, plan: Plan, replies: list[BotReply], crew: Crew) -> FinalAnswer:
    notes = [f"@{name} has retired from the crew; its history is kept." for name in tags.retired]
    notes += [f"@{name} is not a member of this crew." for name in tags.unknown]
    notes += [
        f"@{h} is not in #{turn.room.name}; invite with `nanofolks room invite {turn.room.name} {h}`."
        for h in plan.missing
    ]
    failed: dict[str, list[str]] = {}  # one note per reason, naming every bot it stopped
    for r in replies:
        if not r.ok:
            failed.setdefault(r.error, []).append(f"@{r.bot}")
    notes += [f"{', '.join(bots)} could not answer: {error}" for error, bots in failed.items()]
    labels = {h: bot.label for h, bot in crew.bots.items()}
    cards = [turn.desk_card] if turn.desk_card else []
    return FinalAnswer(turn_id=turn.turn_id, parts=replies, notes=notes, labels=labels, cards=cards)
