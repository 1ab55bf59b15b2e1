"""Skills: folders with a SKILL.md (frontmatter `name`, `description`, then instructions) and optional
scripts/. Found in the workspace's skills/ and among the built-ins in workspace_templates/skills/ (a
workspace skill of the same name replaces the built-in).

Every skill is scanned (scanner.py). A low-risk skill loads; any other waits for `nanofolks skills
approve NAME`, and the approval holds for the content hash it was given for: any edit revokes it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nanofolks.config.paths import templates_dir
from nanofolks.crew.cards import read_card
from nanofolks.skills.scanner import Report, scan
from nanofolks.store.db import Database
from nanofolks.store.skills import SkillApprovals

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
STATUSES = ("loaded", "needs approval", "blocked")


class SkillError(Exception):
    """A skill problem worth one clear line to the user (unknown name, a broken SKILL.md)."""


@dataclass
class Skill:
    name: str
    description: str
    path: Path  # the skill's folder
    source: str  # builtin | workspace

    @property
    def instructions(self) -> str:
        return (self.path / "SKILL.md").read_text(encoding="utf-8")

    @property
    def scripts(self) -> list[str]:
        folder = self.path / "scripts"
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    @cached_property
    def content_hash(self) -> str:
        """sha256 over every file's relative path and bytes: an edit anywhere changes it."""
        digest = hashlib.sha256()
        for file in sorted(p for p in self.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(file.relative_to(self.path)).encode() + b"\0" + file.read_bytes() + b"\0")
        return digest.hexdigest()


def builtin_dir() -> Path:
    return templates_dir() / "skills"


def read_skill_dir(path: Path, source: str) -> Skill:
    fields, _ = read_card(path / "SKILL.md")
    name = fields.get("name", "").strip()
    if not NAME.match(name):
        raise SkillError(f"{path / 'SKILL.md'}: the frontmatter needs `name:` (lower-case letters, digits, -)")
    description = " ".join(fields.get("description", "").split())
    if not description:
        raise SkillError(f"{path / 'SKILL.md'}: the frontmatter needs a one-line `description:`")
    return Skill(name, description[:300], path, source)


def discover(workspace: Path) -> tuple[dict[str, Skill], list[str]]:
    """Every skill by name, and one line per folder that is not a valid skill."""
    found: dict[str, Skill] = {}
    problems: list[str] = []
    for source, root in (("builtin", builtin_dir()), ("workspace", workspace / "skills")):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "SKILL.md").exists()):
            try:
                skill = read_skill_dir(folder, source)
            except SkillError as exc:
                problems.append(str(exc))
                continue
            found[skill.name] = skill  # the workspace comes second: its skill replaces a built-in's
    return found, problems


class Skills:
    """The skills of one workspace, their scan and their approval status. The folders are read again at
    every look (a bot may have just written a skill, a person just edited one: an edit must revoke its
    approval at once); a scan is kept per content hash."""

    def __init__(self, workspace: Path, db: Database):
        self.workspace = workspace
        self.approvals = SkillApprovals(db)
        self.problems: list[str] = []
        self._reports: dict[str, Report] = {}

    @property
    def skills(self) -> dict[str, Skill]:
        found, self.problems = discover(self.workspace)
        return found

    def report(self, skill: Skill) -> Report:
        if skill.content_hash not in self._reports:
            self._reports[skill.content_hash] = scan(skill.path)
        return self._reports[skill.content_hash]

    def get(self, name: str) -> Skill:
        skill = self.skills.get(name)
        if skill is None:
            known = ", ".join(sorted(self.skills)) or "none"
            raise SkillError(f"no skill named {name!r}; skills: {known}")
        return skill

    def status(self, skill: Skill) -> str:
        decision = self.approvals.all().get(skill.name)
        pinned = decision is not None and decision.content_hash == skill.content_hash
        if pinned and decision.decision == "rejected":  # type: ignore[union-attr]
            return "blocked"
        if self.report(skill).risk == "low" or (pinned and decision.decision == "approved"):  # type: ignore[union-attr]
            return "loaded"
        return "needs approval"

    def loaded(self) -> list[Skill]:
        return [s for s in self.skills.values() if self.status(s) == "loaded"]

    def for_bot(self, allowed: list[str]) -> list[Skill]:
        """The loaded skills a bot's role card lets it use (`skills: *` means all)."""
        return [s for s in self.loaded() if "*" in allowed or s.name in allowed]

    def decide(self, name: str, decision: str) -> Skill:
        skill = self.get(name)
        self.approvals.decide(skill.name, skill.content_hash, decision, self.report(skill).risk)
        return skill
