"""Load the crew from the user's workspace and install a team into it.

Workspace layout (copied from workspace_templates/ by onboarding, then the user's to edit):
    crew/team.md                      the team's name, vibe and shared world
    crew/roles/<handle>.md            role card: domain, takes, delivers, done, bans, escalation; its
                                      frontmatter also holds the org: supervisor, tier, status (retired)
    crew/bots/<handle>/IDENTITY.md    name, title, emoji, quirks, catchphrase, relationship
    crew/bots/<handle>/SOUL.md        personality, voice, greeting
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanofolks.config.paths import templates_dir
from nanofolks.crew.cards import read_card, set_field, split_list

HANDLES = ("leader", "researcher", "coder", "social", "creative", "auditor")  # the template crew, in order
LEADER = "leader"
# A handle is a folder name and an @mention: ASCII only, so no path tricks and no look-alike letters.
HANDLE = re.compile(r"^[a-z][a-z0-9_]{1,23}$")
# Words that already mean something in a chat or in the message log (authors "user", "system"...).
RESERVED = {"all", "crew", "everyone", "team", "nanofolks", "user", "system", "assistant", "tool", "intent", "me",
            "you", "here", "channel"}

log = logging.getLogger(__name__)
TEAMS = ("pirate_crew", "space_crew", "rock_band", "executive_suite", "swat_team", "feral_clowder")


class CrewError(Exception):
    """A crew problem worth one clear line to the user."""


@dataclass
class Bot:
    handle: str
    role: str
    name: str
    title: str = ""
    emoji: str = ""
    catchphrase: str = ""
    quirks: list[str] = field(default_factory=list)
    relationship: str = ""
    soul: str = ""
    role_card: str = ""
    tools: list[str] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)  # skill names from the role card, or ["*"]
    supervisor: str = ""  # whom it reports to: the leader by default; the leader reports to nobody
    tier: str = ""  # the routing tier its model comes from ("": the message's tier)
    retired: bool = False  # kept with its history, but no longer answers or is dispatched

    @property
    def label(self) -> str:
        """How a reply is labelled: the handle first, then the display name."""
        return f"@{self.handle} ({self.emoji + ' ' if self.emoji else ''}{self.name})"

    @property
    def aliases(self) -> set[str]:
        """Lower-case names a user may @mention: the handle and the character's name (spaces removed)."""
        names = {self.handle, re.sub(r"\W+", "", self.name.lower())}
        if self.handle == LEADER:
            names.add("nanofolks")
        return {n for n in names if n}


@dataclass
class Crew:
    team: str
    team_name: str
    team_vibe: str
    team_story: str
    bots: dict[str, Bot]  # the active crew: who answers, is dispatched and may be mentioned
    retired: dict[str, Bot] = field(default_factory=dict)  # kept for their history's names
    root: Path | None = None  # the workspace's crew/ folder it was loaded from
    signature: tuple[tuple[str, int, int], ...] = ()  # the cards as loaded (see refresh)
    problems: list[str] = field(default_factory=list)  # card mistakes worked around at load (doctor shows them)
    checked_at: float = 0.0  # time.monotonic() of the last look at the cards

    def get(self, handle: str) -> Bot | None:
        return self.bots.get(handle)

    def member(self, handle: str) -> Bot | None:
        """A bot of the crew, active or retired (for names in history)."""
        return self.bots.get(handle) or self.retired.get(handle)

    def bot(self, handle: str) -> Bot:
        """A bot a turn already chose: still found if it retired meanwhile (another process, mid-turn)."""
        found = self.member(handle)
        if found is None:
            raise KeyError(handle)
        return found

    def resolve(self, mention: str) -> Bot | None:
        """The active bot a mention names, by handle or by character name (case-insensitive)."""
        return _find(self.bots, mention)

    def resolve_retired(self, mention: str) -> Bot | None:
        return _find(self.retired, mention)

    @property
    def handles(self) -> list[str]:
        return list(self.bots)

    def reports(self, handle: str) -> list[str]:
        """Everyone below `handle` in the org, nearest first (the leader's: the whole active crew)."""
        below: list[str] = []
        frontier = [handle]
        while frontier:
            frontier = [h for h, b in self.bots.items() if b.supervisor in frontier and h not in below]
            below += frontier
        return below

    def refresh(self, max_age: float = 0.0) -> bool:
        """Reload in place when a card changed on disk (a hire, a retirement, a hand edit), so a running
        gateway sees it at its next turn; every part holding this object sees the same crew. With `max_age`,
        the cards are looked at only if the last look is older (a look costs ~0.25 ms with a dozen bots,
        bench/crew_bench.py). True if reloaded."""
        now = time.monotonic()
        if self.root is None or now - self.checked_at < max_age:
            return False
        self.checked_at = now
        if _signature(self.root) == self.signature:
            return False
        fresh = load_crew(self.root.parent)
        fresh.checked_at = now
        self.__dict__.update(fresh.__dict__)  # one assignment per field: a concurrent turn sees old or new
        return True


def _find(bots: dict[str, Bot], mention: str) -> Bot | None:
    wanted = re.sub(r"\W+", "", mention.lower())
    return next((bot for bot in bots.values() if wanted in bot.aliases), None)


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every card: a few dozen stat calls, cheap enough for every turn."""
    found = []
    for folder in (root, root / "roles", root / "bots", *sorted((root / "bots").glob("*/"))):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".md") and entry.is_file():
                st = entry.stat()
                found.append((entry.path, st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


def check_handle(handle: str) -> str:
    """The handle if it can name a new bot, else CrewError saying why."""
    if not HANDLE.fullmatch(handle):
        raise CrewError(f"invalid handle {handle!r}: use 2-24 lower-case ASCII letters, digits or '_', "
                        "starting with a letter")
    if handle in RESERVED:
        raise CrewError(f"@{handle} is a reserved word; choose another handle")
    return handle


def crew_dir(workspace: Path) -> Path:
    return workspace / "crew"


def chain_of(bots: dict[str, Bot], handle: str, supervisor: str) -> list[str]:
    """The chain of command above `handle` if it reported to `supervisor`; CrewError on a cycle."""
    chain = [handle]
    current = supervisor
    while current:
        if current in chain:
            raise CrewError(f"@{handle} cannot report to @{supervisor}: "
                            f"{' → '.join('@' + h for h in [*chain, current])} would be a loop")
        chain.append(current)
        current = bots[current].supervisor if current in bots else ""
    return chain


def repair_supervisors(bots: dict[str, Bot]) -> list[str]:
    """At load: a bot whose supervisor is unknown, retired or part of a loop reports to the leader instead
    (a hand-edited card must not stop the crew). Returns one line per repair."""
    problems = []
    for handle, bot in bots.items():
        if handle == LEADER or bot.retired:
            continue
        boss = bots.get(bot.supervisor)
        if boss is None or boss.retired:
            problems.append(f"@{handle}'s supervisor @{bot.supervisor} is not an active bot; it reports to @leader")
            bot.supervisor = LEADER
    for handle, bot in bots.items():
        if handle == LEADER or bot.retired:
            continue
        try:
            chain_of(bots, handle, bot.supervisor)
        except CrewError as exc:
            problems.append(f"{exc}; it reports to @leader")
            bot.supervisor = LEADER
    return problems


def load_crew(workspace: Path) -> Crew:
    root = crew_dir(workspace)
    if not (root / "team.md").exists():
        raise CrewError(f"no crew in {root}: run `nanofolks onboard` first")
    signature = _signature(root)
    team_fields, team_story = read_card(root / "team.md")
    everyone: dict[str, Bot] = {}
    for handle in _bot_folders(root):
        bot_dir = root / "bots" / handle
        ident, _ = read_card(bot_dir / "IDENTITY.md")
        role, role_body = read_card(root / "roles" / f"{handle}.md")
        _, soul = read_card(bot_dir / "SOUL.md")
        everyone[handle] = Bot(
            handle=handle,
            role=role.get("role", handle.title()),
            name=ident.get("name") or handle.title(),
            title=ident.get("title", ""),
            emoji=ident.get("emoji", ""),
            catchphrase=ident.get("catchphrase", ""),
            quirks=split_list(ident.get("quirks", ""), ";"),
            relationship=ident.get("relationship", ""),
            soul=soul,
            role_card=role_body,
            tools=split_list(role.get("tools", "")),
            intents=split_list(role.get("intents", "")),
            skills=split_list(role.get("skills", "")),
            supervisor="" if handle == LEADER else role.get("supervisor", "").lstrip("@").lower() or LEADER,
            tier=role.get("tier", ""),
            retired=handle != LEADER and role.get("status", "").lower() == "retired",
        )
    if LEADER not in everyone:
        raise CrewError(f"the crew in {root} has no leader")
    problems = repair_supervisors(everyone)
    for problem in problems:
        log.warning("crew: %s", problem)
    return Crew(
        team=team_fields.get("team", ""),
        team_name=team_fields.get("name", ""),
        team_vibe=team_fields.get("vibe", ""),
        team_story=team_story,
        bots={h: b for h, b in everyone.items() if not b.retired},
        retired={h: b for h, b in everyone.items() if b.retired},
        root=root,
        signature=signature,
        problems=problems,
    )


def _bot_folders(root: Path) -> list[str]:
    """The bots' folders: the template crew in its order, then hires by name. A folder whose name is no
    valid handle is skipped (a stray folder must not become an @mention), and so is a hire without its role card."""
    bots = root / "bots"
    found = {p.name for p in bots.iterdir() if p.is_dir() and HANDLE.fullmatch(p.name)} if bots.exists() else set()
    # a hire's role card is written last: until it is there, the hire is not complete
    found = {h for h in found if h in HANDLES or (root / "roles" / f"{h}.md").exists()}
    return [h for h in HANDLES if h in found] + sorted(found - set(HANDLES))


def available_teams() -> list[str]:
    root = templates_dir() / "teams"
    return sorted(p.name for p in root.iterdir() if (p / "team.md").exists()) if root.exists() else []


def install_team(workspace: Path, team: str, single: bool = False) -> Crew:
    """Copy a team's cards into the workspace (replacing the previous team's souls and identities)."""
    source = templates_dir() / "teams" / team
    if team not in available_teams():
        raise CrewError(f"unknown team {team!r}; choose one of: {', '.join(available_teams())}")
    root = crew_dir(workspace)
    (root / "roles").mkdir(parents=True, exist_ok=True)
    for handle in HANDLES:
        role_card = root / "roles" / f"{handle}.md"
        if not role_card.exists():  # role cards are the user's once copied
            shutil.copyfile(templates_dir() / "roles" / f"{handle}.md", role_card)
    bots_dir = root / "bots"
    for handle in HANDLES:  # hired bots keep their persona: they are the user's, not the template's
        if (bots_dir / handle).exists():
            shutil.rmtree(bots_dir / handle)
    for handle in (LEADER,) if single else HANDLES:
        shutil.copytree(source / handle, bots_dir / handle)
    shutil.copyfile(source / "team.md", root / "team.md")
    set_field(root / "team.md", "team", team)
    return load_crew(workspace)


def rename_bot(workspace: Path, handle: str, new_name: str) -> Bot:
    new_name = new_name.strip()
    if not new_name or len(new_name) > 40 or "\n" in new_name:
        raise CrewError("a bot's name must be 1 to 40 characters on one line")
    path = crew_dir(workspace) / "bots" / handle / "IDENTITY.md"
    if not HANDLE.fullmatch(handle) or not path.exists():
        raise CrewError(f"no bot @{handle} in this crew")
    crew = load_crew(workspace)
    clash = crew.resolve(new_name)
    if clash and clash.handle != handle:
        raise CrewError(f"{new_name!r} is already @{clash.handle}'s name")
    set_field(path, "name", new_name)
    bot = load_crew(workspace).get(handle)
    assert bot is not None
    return bot
