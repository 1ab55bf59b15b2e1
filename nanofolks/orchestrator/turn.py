"""The data object handed from step to step for one human message."""

from __future__ import annotations

from dataclasses import dataclass, field

from nanofolks.identity import LOCAL_OWNER
from nanofolks.routing.rules import Decision
from nanofolks.store.rooms import Room


@dataclass
class Tags:
    bots: list[str] = field(default_factory=list)  # handles mentioned, in order
    everyone: bool = False  # @all / @crew
    actions: list[str] = field(default_factory=list)  # action words found (build, research, ...)
    unknown: list[str] = field(default_factory=list)  # @names that are no bot of the crew
    retired: list[str] = field(default_factory=list)  # @handles of retired bots


@dataclass
class Intent:
    kind: str  # greeting, question, request, build, research, ...
    confident: bool
    source: str = "rules"  # rules | llm


@dataclass
class Plan:
    mode: str  # mentioned | everyone | leader
    bots: list[str]  # who answers, in order
    consult: list[str] = field(default_factory=list)  # specialists the leader hears first
    missing: list[str] = field(default_factory=list)  # mentioned but not members of the room


@dataclass
class BotReply:
    bot: str
    text: str
    ok: bool = True
    error: str = ""


@dataclass
class Turn:
    room: Room
    text: str
    sender: str = "user"  # the display name: a label only
    person: str = LOCAL_OWNER  # who asks, stably ("telegram:12345"): what memory knows them by
    platform: str = "cli"
    turn_id: str = ""
    chat: str = ""  # "telegram:12345" when the message came from a platform chat
    scope: tuple[int, ...] | None = None  # the rooms the sender's memory may see (None: all, the owner)
    message_id: int | None = None  # the stored message this turn answers: its history ends there
    deadline: float | None = None  # the event loop's time by which the bots must have answered (None: no limit)
    time_limit: float = 0.0  # the seconds that deadline allows, for telling the user
    tags: Tags | None = None
    intent: Intent | None = None
    plan: Plan | None = None
    route: Decision | None = None  # the tier routing chose (None with routing off)
    replies: list[BotReply] = field(default_factory=list)
    # The hiring desk's doing this turn (orchestrator/hiring.py): what it did, the card the user sees under
    # the reply, and what the leader is told.
    desk_action: str = ""
    desk_card: str = ""
    desk_note: str = ""

    @property
    def tier(self) -> str:
        return self.route.tier if self.route else ""


@dataclass
class FinalAnswer:
    turn_id: str
    parts: list[BotReply]
    notes: list[str] = field(default_factory=list)  # things the user should know (missing bots, failures)
    labels: dict[str, str] = field(default_factory=dict)  # handle -> "@coder (🔨 Ironhook)"
    cards: list[str] = field(default_factory=list)  # Markdown blocks under the replies (a hiring proposal)

    def markdown(self) -> str:
        """The answer as one Markdown text for chat platforms: parts labelled when several bots spoke."""
        spoken = [p for p in self.parts if p.ok and p.text.strip()]
        if len(spoken) == 1 and not self.notes:
            return "\n\n".join([spoken[0].text.strip(), *self.cards])
        blocks = [f"**{self.labels.get(p.bot, '@' + p.bot)}**\n{p.text.strip()}" for p in spoken]
        blocks += self.cards
        blocks += [f"_{note}_" for note in self.notes]
        return "\n\n".join(blocks)
