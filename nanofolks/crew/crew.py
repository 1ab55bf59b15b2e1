"""Load the crew from the user's workspace and install a team into it.

Workspace layout (copied from workspace_templates/ by onboarding, then the user's to edit):
    crew/team.md                      the team's name, vibe and shared world
    crew/roles/<handle>.md            role card: domain, takes, delivers, done, bans, escalation
    crew/bots/<handle>/IDENTITY.md    name, title, emoji, quirks, catchphrase, relationship
    crew/bots/<handle>/SOUL.md        personality, voice, greeting
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nanofolks.config.paths import templates_dir
from nanofolks.crew.cards import read_card, set_field, split_list

HANDLES = ("leader", "researcher", "coder", "social", "creative", "auditor")
LEADER = "leader"
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
    bots: dict[str, Bot]

    def get(self, handle: str) -> Bot | None:
        return self.bots.get(handle)

    def resolve(self, mention: str) -> Bot | None:
        """The bot a mention names, by handle or by character name (case-insensitive)."""
        wanted = re.sub(r"\W+", "", mention.lower())
        for bot in self.bots.values():
            if wanted in bot.aliases:
                return bot
        return None

    @property
    def handles(self) -> list[str]:
        return list(self.bots)


def crew_dir(workspace: Path) -> Path:
    return workspace / "crew"


def load_crew(workspace: Path) -> Crew:
    root = crew_dir(workspace)
    if not (root / "team.md").exists():
        raise CrewError(f"no crew in {root}: run `nanofolks onboard` first")
    team_fields, team_story = read_card(root / "team.md")
    bots: dict[str, Bot] = {}
    for handle in HANDLES:
        bot_dir = root / "bots" / handle
        if not bot_dir.exists():
            continue  # single-bot mode keeps only the leader
        ident, _ = read_card(bot_dir / "IDENTITY.md")
        role, role_body = read_card(root / "roles" / f"{handle}.md")
        _, soul = read_card(bot_dir / "SOUL.md")
        bots[handle] = Bot(
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
        )
    if LEADER not in bots:
        raise CrewError(f"the crew in {root} has no leader")
    return Crew(
        team=team_fields.get("team", ""),
        team_name=team_fields.get("name", ""),
        team_vibe=team_fields.get("vibe", ""),
        team_story=team_story,
        bots=bots,
    )


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
    if bots_dir.exists():
        shutil.rmtree(bots_dir)
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
    if not path.exists():
        raise CrewError(f"no bot @{handle} in this crew")
    crew = load_crew(workspace)
    clash = crew.resolve(new_name)
    if clash and clash.handle != handle:
        raise CrewError(f"{new_name!r} is already @{clash.handle}'s name")
    set_field(path, "name", new_name)
    bot = load_crew(workspace).get(handle)
    assert bot is not None
    return bot
