"""Step 3, dispatch: who answers. Mentioned bots; everyone for @all/@crew; otherwise the room's coordinator
(the leader when present), who first hears those below it in the org whose role cards claim the intent
(bounded by the turn budget)."""

from __future__ import annotations

from nanofolks.crew.crew import LEADER, Crew
from nanofolks.orchestrator.turn import Intent, Plan, Tags
from nanofolks.store.rooms import Room

# Intents that are chat, not work: the leader answers alone.
_CHAT = {"greeting", "thanks", "question", "request"}
MAX_CONSULTED = 2


def dispatch(tags: Tags, intent: Intent, room: Room, crew: Crew, turn_budget: int) -> Plan:
    members = [h for h in room.members if h in crew.bots]
    if tags.everyone:
        return Plan("everyone", _leader_first(members)[:turn_budget])
    if tags.bots:
        present = [h for h in tags.bots if h in members]
        missing = [h for h in tags.bots if h not in members]
        if present:
            return Plan("mentioned", present[:turn_budget], missing=missing)
        return Plan("leader", [_coordinator(members)], missing=missing)
    coordinator = _coordinator(members)
    consult: list[str] = []
    if intent.kind not in _CHAT:
        below = set(crew.reports(coordinator))
        consult = [
            h for h in members
            if h in below and intent.kind in crew.bots[h].intents
        ][: min(MAX_CONSULTED, turn_budget - 1)]
    return Plan("leader", [coordinator], consult=consult)


def _coordinator(members: list[str]) -> str:
    return members[0] if members and LEADER not in members else LEADER


def _leader_first(members: list[str]) -> list[str]:
    return sorted(members, key=lambda h: h != LEADER)
