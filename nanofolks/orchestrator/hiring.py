"""Hiring by conversation: "hire a researcher who watches industry trends" makes the leader propose a new
member; the user's "yes" in the same room, in a later message, hires it.

Code does what must be right whatever the model: reading the request, drafting the proposal (crew/hiring.py),
keeping it per room (store/crew.py), checking the caps and the agreement, writing the files. The leader's model
presents it in its own voice and, when it can call tools, may refine the draft (`propose_hire`) or confirm it
(`confirm_hire`); `confirm_hire` still applies nothing unless this turn's message is the user's agreement.
What the desk did is shown under the leader's reply as a card, so the user always sees the real proposal."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from nanofolks.config.schema import BotSpendConfig, Config
from nanofolks.crew.crew import LEADER, Crew, CrewError
from nanofolks.crew.hiring import Candidate, check_candidate, check_caps, draft, split_request, write_bot
from nanofolks.orchestrator.turn import Turn
from nanofolks.store.crew import CrewRepo, PendingHire
from nanofolks.store.db import Database
from nanofolks.store.rooms import RoomRepo

log = logging.getLogger(__name__)

_LEAD_IN = (r"(?:(?:i'?d|i would|we'?d|we would) (?:like|love)|i want|we want|i wanna|i need|we need|let'?s|let us|"
            r"can you|could you|would you|please|pls|go|time to|help me)")
_HIRE = re.compile(
    rf"^\W*(?:(?:ok|okay|so|now|hey|and)\W+)*(?:{_LEAD_IN}\s+(?:to\s+)?)?(?:please\s+)?"
    r"(?:hire|recruit|bring on|take on|onboard)\s+(?:us\s+|me\s+)?(?:a|an|another|one|some(?:one|body))\s+(?P<what>.+)",
    re.IGNORECASE | re.DOTALL)
_YES = re.compile(r"^\W*(?:yes|yep|yeah|yup|sure|ok|okay|aye|approved?|agreed?|confirm(?:ed)?|go ahead|do it|"
                  r"sounds good|looks good|lgtm|perfect|great|hire (?:them|him|her|it|both|all)|make it so|"
                  r"let'?s do it|welcome aboard)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(?:no|nope|nah|cancel|never ?mind|don'?t|do not|forget it|scrap (?:it|that)|not now)\b",
                 re.IGNORECASE)
_BUT = re.compile(r"\b(?:but|not|don'?t|wait|instead|however|change|rather)\b", re.IGNORECASE)
_MENTIONS = re.compile(r"^\s*(?:@[\w-]+[\s,:]*)+")
_RENAME = re.compile(r"\b(?:call|name)\s+(?:her|him|them|it|the new \w+)\s+[\"“']?(?P<name>[^\"”'.!?,;\n]{1,40})",
                     re.IGNORECASE)


def hire_request(text: str) -> str:
    """What the user wants hired ("researcher who watches trends"), or '' when the message is no hire request."""
    match = _HIRE.match(_MENTIONS.sub("", text))
    if not match:
        return ""
    what = match.group("what").strip()
    return f"someone {what}" if re.match(r"(?:who|that|to)\b", what, re.IGNORECASE) else what


def new_name(text: str) -> str:
    """The name in "call her Sandy" / "name him Captain Hook", or ''."""
    match = _RENAME.search(text)
    return " ".join(match.group("name").split()) if match else ""


def reply_to_proposal(text: str) -> str:
    """'agree', 'decline' or '' for a message answering a proposal. "Yes, but..." is not agreement."""
    text = _MENTIONS.sub("", text)
    if _NO.match(text):
        return "decline"
    if _YES.match(text) and not _BUT.search(text) and len(text) <= 120:
        return "agree"
    return ""


NOTE_MARK = "[Hiring desk, not from the user]"
_LINES = {  # the leader's words when its model only parrots the desk's note (a tiny model does)
    "proposed": "Here is who I would hire; the details are below. Shall I?",
    "hired": "Welcome to the crew!",
    "declined": "Understood: nobody is hired.",
    "refused": "I cannot do that hire; the reason is below.",
    "none": "There is no hiring proposal waiting here.",
}


@dataclass
class DeskResult:
    action: str  # proposed | hired | declined | refused | none
    card: str  # what the user sees under the leader's reply
    note: str  # what the leader is told, to present it in its own voice

    def show(self, turn: Turn) -> str:
        """Put it on the turn (the newest result wins: a refined proposal replaces the draft); the tools'
        result text."""
        turn.desk_action, turn.desk_card = self.action, self.card
        turn.desk_note = f"{NOTE_MARK} {self.note}"
        return f"{self.note}\n\n{self.card}"


def settle_reply(turn: Turn) -> None:
    """A leader's reply that repeats the desk's note instead of speaking to the user becomes a plain line
    (the card under it says the rest): small models often echo the last message they were given."""
    if not turn.desk_note:
        return
    note = " ".join(turn.desk_note.removeprefix(NOTE_MARK).split())
    for reply in turn.replies:
        said = " ".join(reply.text.split())
        if reply.bot == LEADER and reply.ok and ("Hiring desk" in said or note[:64] in said):
            reply.text = _LINES.get(turn.desk_action, "")


def _renamed(candidate: Candidate, name: str) -> dict[str, Any]:
    """The request that redrafts a candidate under another name (and the handle that name gives)."""
    return {"role": candidate.role, "focus": "", "template": candidate.template, "name": name,
            "supervisor": candidate.supervisor, "tier": candidate.tier}


class HiringDesk:
    def __init__(self, config: Config, crew: Crew, db: Database):
        self.config = config
        self.crew = crew
        self.db = db
        self.repo = CrewRepo(db)
        self.rooms = RoomRepo(db)

    async def prepare(self, turn: Turn) -> None:
        """Before the leader answers: act on a hire request, or on the answer to this room's proposal."""
        if turn.plan is None or LEADER not in turn.plan.bots:
            return
        result: DeskResult | None = None
        pending = await self.db.quick(self.repo.pending, turn.room.id)
        if pending is not None and pending.turn_id != turn.turn_id:
            answer = reply_to_proposal(turn.text)
            if answer == "agree":
                result = await self.confirm(turn)
            elif answer == "decline":
                await self.db.quick(self.repo.drop, turn.room.id)
                result = DeskResult("declined", "_Hiring proposal dropped: nobody was hired._",
                                    "The user declined your hiring proposal; it is dropped. Acknowledge briefly.")
            elif len(pending.proposal) == 1 and (name := new_name(turn.text)):
                result = await self.propose(turn, [_renamed(Candidate.from_dict(pending.proposal[0]), name)])
        if result is None and (wanted := hire_request(turn.text)):
            result = await self.propose(turn, [{"role": noun, "focus": focus} for noun, focus in split_request(wanted)])
        if result is not None:
            result.show(turn)
            turn.plan.consult = []  # the leader answers this one alone

    async def propose(self, turn: Turn, wanted: list[dict[str, Any]]) -> DeskResult:
        """Draft the candidates and keep them as the room's proposal (replacing an earlier one)."""
        refusal = await self._refusal(turn, len(wanted))
        if refusal:
            return refusal
        drafted: list[Candidate] = []
        try:
            for item in wanted:
                refine = {k: str(v) for k, v in item.items() if k not in ("role", "focus") and v}
                drafted.append(draft(self.crew, item.get("role", ""), item.get("focus", ""),
                                     taken={c.handle for c in drafted}, **refine))
        except CrewError as exc:
            return DeskResult("refused", f"_I could not draft that hire: {exc}_", f"The hire could not be drafted: {exc}. "
                              "Tell the user plainly and ask what to change.")
        await self.db.quick(self.repo.propose, turn.room.id, turn.sender, turn.turn_id,
                            [c.as_dict() for c in drafted])
        cards = "\n\n".join(c.summary(self.crew) for c in drafted)
        who = " and ".join(f"{c.name} (@{c.handle})" for c in drafted)
        return DeskResult(
            "proposed", f"**Hiring proposal**\n\n{cards}\n\n_Reply **yes** to hire, or **no** to drop it._",
            f"You drafted a hiring proposal: {who}. The details are shown to the "
            "user under your reply. In one or two sentences, introduce the candidate(s) in your own voice and ask "
            "the user to agree. Nobody is hired until they say yes.")

    async def confirm(self, turn: Turn) -> DeskResult:
        """Hire the room's proposal: only for the person who asked, in a later message, within the caps."""
        pending = await self.db.quick(self.repo.pending, turn.room.id)
        if pending is None or pending.turn_id == turn.turn_id:
            return DeskResult("none", "_There is no hiring proposal waiting in this room._",
                              "There is no hiring proposal waiting in this room: nobody was hired.")
        if pending.sender != turn.sender:
            return DeskResult("refused", f"_Only {pending.sender}, who asked for this hire, can agree to it._",
                              "Someone other than the requester tried to agree to the hire; nothing changed.")
        refusal = await self._refusal(turn, len(pending.proposal))
        if refusal:
            return refusal
        if await self.db.quick(self.repo.take, turn.room.id, turn.turn_id) is None:
            return DeskResult("none", "_That proposal was already handled._", "The proposal was already handled.")
        hired, failed = await self.db.run(self._hire, pending, turn)
        lines = [f"✓ Hired **{c.emoji} {c.name}** (@{c.handle}), {c.title}, reporting to @{c.supervisor}. "
                 f"Say hello: `@{c.handle}`" for c in hired]
        lines += [f"_Could not hire @{handle}: {error}_" for handle, error in failed]
        names = ", ".join(f"{c.name} (@{c.handle})" for c in hired) or "nobody"
        return DeskResult("hired" if hired else "refused", "\n".join(lines), f"The user agreed: {names} hired and "
                                            "already in every room. Welcome them in one or two sentences.")

    def _hire(self, pending: PendingHire, turn: Turn) -> tuple[list[Candidate], list[tuple[str, str]]]:
        return self.hire([Candidate.from_dict(d) for d in pending.proposal], turn.sender, f"in #{turn.room.name}")

    def hire(self, candidates: list[Candidate], actor: str, where: str) -> tuple[list[Candidate], list[tuple[str, str]]]:
        """Write each candidate (checked again: the crew may have changed since it was drafted), put it in every
        room, record it, give it its role's spend limit; the crew reloads. Returns (hired, [(handle, why not)])."""
        from nanofolks.config.loader import workspace_path

        hired, failed = [], []
        for candidate in candidates:
            try:
                check_candidate(self.crew, candidate)
                write_bot(workspace_path(self.config), candidate)
            except CrewError as exc:
                failed.append((candidate.handle, str(exc)))
                continue
            self.rooms.add_member_everywhere(candidate.handle)
            self.repo.record(candidate.handle, "hired", actor, f"{where}: {candidate.role}")
            self._spend_limit(candidate)
            self.crew.refresh()
            hired.append(candidate)
        return hired, failed

    def _spend_limit(self, candidate: Candidate) -> None:
        """The role's daily spend limit, in config (the file and this process), unless one is set already."""
        from nanofolks.config.loader import ConfigError, set_values

        if candidate.daily_limit_usd is None or candidate.handle in self.config.spend.bots:
            return
        try:
            set_values({f"spend.bots.{candidate.handle}.dailyLimitUsd": candidate.daily_limit_usd},
                       resolve_secrets=False)
        except (ConfigError, OSError) as exc:  # the hire stands; the limit can be set by hand
            log.warning("no spend limit for @%s: %s", candidate.handle, exc)
            return
        self.config.spend.bots[candidate.handle] = BotSpendConfig(daily_limit_usd=candidate.daily_limit_usd)

    async def _refusal(self, turn: Turn, adding: int) -> DeskResult | None:
        """Why this hire cannot go ahead (not the owner, a cap reached), or None."""
        problem = ("Only the crew's owner can hire new members." if turn.scope is not None
                   else await self.db.quick(self.cap_problem, adding))
        if not problem:
            return None
        return DeskResult("refused", f"_{problem}_", f"The hire was refused: {problem} Tell the user plainly.")

    def cap_problem(self, adding: int) -> str:
        """The sentence saying which cap hiring `adding` more would pass (crew.maxSize, crew.maxHiresPerDay)."""
        from nanofolks.llm.spend import day_start

        try:
            check_caps(self.crew, self.config.crew.max_size, self.config.crew.max_hires_per_day,
                       self.repo.count_since("hired", day_start()), adding)
        except CrewError as exc:
            return str(exc)
        return ""
