"""Hiring: a new member drafted from a role template and the team's name style, checked, and written into
the workspace as persona files and a role card; and retiring one, its history kept.

What the user asked for ("a researcher who watches industry trends") is all a draft needs, so hiring works
with the smallest model; a capable model may refine the draft (name, personality, supervisor, tier).

A bot file (`nanofolks bot create --from-md FILE`) is one card: a frontmatter naming the bot (handle, name,
title, emoji, role, template, supervisor, tier, tools, skills, intents, catchphrase, quirks) and a body whose
Personality / Voice / Greeting sections are its soul and whose other sections are its role card."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nanofolks.config.paths import templates_dir
from nanofolks.crew.cards import parse_card, read_card, set_field, split_list
from nanofolks.crew.crew import LEADER, Crew, CrewError, check_handle, crew_dir
from nanofolks.crew.org import check_supervisor

FALLBACK_TEMPLATE = "assistant"
SOUL_SECTIONS = ("Personality", "Voice", "Greeting")
MAX_CARD_BYTES = 64_000
MAX_FOCUS_CHARS = 160
MAX_PER_PROPOSAL = 3


@dataclass
class Candidate:
    """A new member as proposed: everything its files will say."""

    handle: str
    name: str
    title: str
    emoji: str
    role: str  # one line: "researcher who watches industry trends"
    template: str  # the role template it was drafted from
    focus: str = ""  # what the user asked it to do
    supervisor: str = LEADER
    tier: str = ""
    daily_limit_usd: float | None = None
    tools: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    catchphrase: str = ""
    quirks: list[str] = field(default_factory=list)
    soul: str = ""  # Personality, Voice, Greeting sections
    role_card: str = ""  # Domain, Takes, Delivers... sections

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self, crew: Crew) -> str:
        """The proposal as the user reads it (Markdown)."""
        boss = crew.member(self.supervisor)
        personality = _section(self.soul, "Personality")
        lines = [f"**{self.emoji} {self.name}** (@{self.handle}), {self.title}",
                 f"- Role: {self.role}",
                 f"- Reports to: @{self.supervisor}" + (f" ({boss.name})" if boss else ""),
                 f"- Model tier: {self.tier or 'the message’s tier'}"
                 + (f", spend limit ${self.daily_limit_usd:.2f} a day" if self.daily_limit_usd is not None else ""),
                 f"- Tools: {', '.join(self.tools) or 'none'}"]
        if personality:
            lines.append(f"- Personality: {personality}")
        return "\n".join(lines)


# --- role templates and team styles ------------------------------------------------------------------

@dataclass
class RoleTemplate:
    name: str
    role: str
    tools: list[str]
    skills: list[str]
    intents: list[str]
    tier: str
    daily_limit_usd: float | None
    words: list[str]
    noun: str  # what to call a hire asked for as "someone who ..."
    body: str


def role_templates() -> dict[str, RoleTemplate]:
    """Role templates a hire can start from (workspace_templates/roles/*.md), except the leader's."""
    found = {}
    for path in sorted((templates_dir() / "roles").glob("*.md")):
        meta, body = read_card(path)
        if path.stem == LEADER:
            continue
        limit = meta.get("hire-daily-limit-usd", "")
        found[path.stem] = RoleTemplate(
            path.stem, meta.get("role", path.stem.title()), split_list(meta.get("tools", "")),
            split_list(meta.get("skills", "")), split_list(meta.get("intents", "")), meta.get("hire-tier", ""),
            float(limit) if limit else None, [w.lower() for w in split_list(meta.get("hire-words", ""))],
            meta.get("hire-noun", path.stem), body)
    return found


@dataclass
class TeamStyle:
    names: list[tuple[str, str]]  # (handle, name), in the order they are offered
    titles: dict[str, tuple[str, str]]  # role template -> (title, emoji)
    catchphrase: str
    voice: str
    greeting: str  # with {name} and {title}


def team_style(team: str) -> TeamStyle:
    """How the team names and voices its hires (workspace_templates/teams/<team>/hires.md)."""
    meta, body = read_card(templates_dir() / "teams" / team / "hires.md")
    names = []
    for entry in split_list(meta.get("names", ""), ";"):
        handle, _, name = entry.partition("=")
        names.append((handle.strip(), name.strip()))
    titles = {}
    for key, value in meta.items():
        if key.startswith("title-"):
            title, _, emoji = value.rpartition(",")
            titles[key.removeprefix("title-")] = (title.strip(), emoji.strip())
    return TeamStyle(names, titles, meta.get("catchphrase", ""), _section(body, "Voice"), _section(body, "Greeting"))


# --- reading a hire request ---------------------------------------------------------------------------

_SPLIT = re.compile(r"[,;]?\s+(?:and|plus)\s+(?:also\s+)?(?:a|an|another|one)\s+|;\s*(?:a|an)\s+", re.IGNORECASE)
_CLAUSE = re.compile(r"\s+(?:who|that|which|to|for|with|whose)\s+|,\s*", re.IGNORECASE)


def split_request(what: str) -> list[tuple[str, str]]:
    """"a researcher who watches trends and an engineer who runs our servers" ->
    [("researcher", "watches trends"), ("engineer", "runs our servers")]: (role noun, focus)."""
    wanted = []
    for part in _SPLIT.split(what.strip().rstrip(".!?"))[:MAX_PER_PROPOSAL]:
        noun, focus = _noun_focus(part)
        if noun:
            wanted.append((noun, focus))
    return wanted


def _noun_focus(part: str) -> tuple[str, str]:
    pieces = _CLAUSE.split(part.strip(), maxsplit=1)
    noun = re.sub(r"^(?:new|good|great|dedicated|full-time|part-time)\s+", "", pieces[0].strip(), flags=re.I)
    focus = pieces[1].strip() if len(pieces) > 1 else ""
    return " ".join(noun.split())[:60], " ".join(focus.split())[:MAX_FOCUS_CHARS]


def pick_template(noun: str, focus: str, templates: dict[str, RoleTemplate]) -> str:
    """The role template whose hire words match the role noun first, then the focus; else the generalist."""
    for text in (noun, focus):
        words = set(re.findall(r"[a-z]+", text.lower()))
        for name, template in templates.items():
            if words & set(template.words):
                return name
    return FALLBACK_TEMPLATE if FALLBACK_TEMPLATE in templates else next(iter(templates))


# --- drafting -----------------------------------------------------------------------------------------

def draft(crew: Crew, noun: str, focus: str = "", taken: set[str] | None = None, **refine: Any) -> Candidate:
    """A candidate for "a <noun> who <focus>" in the crew's team style. `refine` (name, handle, title,
    emoji, personality, supervisor, tier) overrides the draft; each is checked like the rest."""
    noun, focus = " ".join(noun.split()), " ".join(focus.split())
    if not noun:
        raise CrewError("say what the new member is, e.g. a researcher who watches industry trends")
    templates = role_templates()
    template = templates[refine.get("template") or pick_template(noun, focus, templates)]
    if noun.lower() in ("someone", "somebody", "person"):
        noun = template.noun
    style = team_style(crew.team) if crew.team else TeamStyle([], {}, "", "", "")
    taken = set(taken or ()) | _names_in_use(crew)
    handle, name = _pick_name(style, taken, refine.get("handle", ""), refine.get("name", ""), template.name)
    title, emoji = style.titles.get(template.name, (template.role, "🧑"))
    title, emoji = refine.get("title") or title, refine.get("emoji") or emoji
    role = " ".join(f"{noun} who {focus}".split()) if focus else noun
    personality = refine.get("personality") or (
        f"{name} joined the {crew.team_name or 'crew'} as {title}, the crew's {role}"
        + f". Steady, curious and candid, {name} owns that work, says plainly what is known and what is not, "
          f"and keeps whoever they report to in the loop.")
    soul = "\n\n".join([f"## Personality\n{personality}",
                        f"## Voice\n{style.voice or 'Clear and friendly, in the crew’s own style.'}",
                        "## Greeting\n" + (style.greeting or "Hi, I'm {name}, the new {title}.").format(
                            name=name, title=title)])
    role_card = (f"## Focus\nHired to be the crew's {role}.\n\n" + template.body).strip()
    candidate = Candidate(
        handle=handle, name=name, title=title, emoji=emoji, role=role[0].upper() + role[1:], template=template.name,
        focus=focus, supervisor=refine.get("supervisor") or LEADER, tier=refine.get("tier") or template.tier,
        daily_limit_usd=template.daily_limit_usd, tools=template.tools, skills=template.skills,
        intents=template.intents, catchphrase=style.catchphrase, soul=soul, role_card=role_card)
    check_candidate(crew, candidate, taken)
    return candidate


def _names_in_use(crew: Crew) -> set[str]:
    """Every alias of every bot, retired ones too: a hire may not take a name someone answers to."""
    return {alias for bot in (*crew.bots.values(), *crew.retired.values()) for alias in bot.aliases}


def _pick_name(style: TeamStyle, taken: set[str], handle: str, name: str, template: str) -> tuple[str, str]:
    if handle or name:
        handle = handle.strip().lstrip("@").lower() or _handle_from(name, taken)
        return handle, name.strip() or handle.title()
    for pool_handle, pool_name in style.names:
        if pool_handle not in taken and _alias(pool_name) not in taken:
            return pool_handle, pool_name
    # the pool is used up: the template's name and a number
    n = 2
    while f"{template}{n}" in taken:
        n += 1
    return f"{template}{n}", f"{template.title()} {n}"


def _handle_from(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]", "", name.split()[-1].lower()) if name.split() else ""
    base = base if re.match(r"^[a-z]", base) else f"bot{base}"
    handle, n = base[:20], 2
    while handle in taken:
        handle, n = f"{base[:20]}{n}", n + 1
    return handle


def _alias(name: str) -> str:
    return re.sub(r"\W+", "", name.lower())


def check_candidate(crew: Crew, candidate: Candidate, taken: set[str] | None = None) -> None:
    """CrewError when the candidate cannot join this crew: a bad or taken handle or name, an unknown
    supervisor or tier, a bad emoji."""
    from nanofolks.config.schema import TIERS

    handle = check_handle(candidate.handle)
    taken = _names_in_use(crew) if taken is None else taken
    if handle in taken or (crew.root is not None and (crew.root / "bots" / handle).exists()):
        raise CrewError(f"@{handle} is already taken (a crew member's handle or name, retired ones too)")
    name = candidate.name.strip()
    if not name or len(name) > 40 or not _alias(name) or _invisible(name) or _invisible(candidate.title):
        raise CrewError("a bot's name must be 1 to 40 characters on one line, with a letter or digit and no "
                        "control or invisible characters")
    if _alias(name) in taken:
        raise CrewError(f"the name {name!r} is already taken in this crew")
    if len(candidate.emoji) > 8 or "\n" in candidate.emoji:
        raise CrewError("the emoji must be a single emoji (at most 8 characters)")
    if candidate.tier and candidate.tier not in TIERS:
        raise CrewError(f"unknown tier {candidate.tier!r}: choose one of {', '.join(TIERS)}")
    candidate.supervisor = check_supervisor(crew, handle, candidate.supervisor)
    unknown = [t for t in candidate.tools if t not in known_tools()]
    if unknown:
        raise CrewError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(sorted(known_tools()))}")


def _invisible(text: str) -> bool:
    """Control or format characters (line breaks, right-to-left overrides, zero-width joiners): in a name they
    could forge another bot's label in a chat."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def known_tools() -> set[str]:
    """Every tool a role card may list: the built-ins and those the gateway adds (memory, skills, hiring)."""
    from nanofolks.agent.tools import builtin_registry

    return {*builtin_registry().names, "search_memory", "read_skill", "run_skill_script", "propose_hire", "confirm_hire"}


def check_caps(crew: Crew, max_size: int, max_per_day: int, hired_today: int, adding: int) -> None:
    """CrewError, one plain sentence, when hiring `adding` more would pass a cap in config."""
    if len(crew.bots) + adding > max_size:
        raise CrewError(f"The crew is full: {len(crew.bots)} of {max_size} members (crew.maxSize). "
                        "Retire someone with `nanofolks bot retire HANDLE` or raise the cap with "
                        f"`nanofolks config set crew.maxSize {len(crew.bots) + adding}`.")
    if hired_today + adding > max_per_day:
        raise CrewError(f"That would be hire {hired_today + adding} today, and the crew takes at most {max_per_day} "
                        "a day (crew.maxHiresPerDay). Try again tomorrow or raise the cap with "
                        f"`nanofolks config set crew.maxHiresPerDay {hired_today + adding}`.")


# --- bot files ----------------------------------------------------------------------------------------

def parse_bot_file(path: Path, crew: Crew) -> Candidate:
    """A candidate from a bot file; CrewError naming the problem when the file cannot make one."""
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise CrewError(f"{path.name} is over {MAX_CARD_BYTES // 1000} KB; a bot card is a short Markdown file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CrewError(f"{path.name} is not UTF-8 text") from None
    except OSError as exc:
        raise CrewError(f"cannot read {path}: {exc.strerror or exc}") from None
    meta, body = parse_card(text)
    if not meta:
        raise CrewError(f"{path.name} has no frontmatter: it must start with a '---' line, `key: value` lines "
                        "(at least handle and name) and another '---' line")
    missing = [k for k in ("handle", "name") if not meta.get(k)]
    if missing:
        raise CrewError(f"{path.name} lacks {' and '.join(missing)} in its frontmatter")
    templates = role_templates()
    template_name = meta.get("template", "") or pick_template(meta.get("role", ""), "", templates)
    if template_name not in templates:
        raise CrewError(f"unknown template {template_name!r}; choose one of {', '.join(templates)}")
    template = templates[template_name]
    soul = "\n\n".join(f"## {s}\n{_section(body, s)}" for s in SOUL_SECTIONS if _section(body, s))
    role_card = _without_sections(body, SOUL_SECTIONS) or template.body
    limit = meta.get("dailylimitusd", "") or meta.get("daily-limit-usd", "")
    try:
        daily_limit = float(limit) if limit else template.daily_limit_usd
    except ValueError:
        raise CrewError(f"dailyLimitUsd must be a number of dollars, not {limit!r}") from None
    candidate = Candidate(
        handle=meta["handle"].lstrip("@"), name=meta["name"], title=meta.get("title", template.role),
        emoji=meta.get("emoji", ""), role=meta.get("role", template.role), template=template_name,
        supervisor=meta.get("supervisor", LEADER).lstrip("@").lower() or LEADER,
        tier=meta.get("tier", template.tier), daily_limit_usd=daily_limit,
        tools=split_list(meta["tools"]) if "tools" in meta else template.tools,
        skills=split_list(meta["skills"]) if "skills" in meta else template.skills,
        intents=split_list(meta["intents"]) if "intents" in meta else template.intents,
        catchphrase=meta.get("catchphrase", ""), quirks=split_list(meta.get("quirks", ""), ";"),
        soul=soul or f"## Personality\n{meta['name']} is the crew's {meta.get('role', template.role)}.",
        role_card=role_card)
    check_candidate(crew, candidate)
    return candidate


def write_bot(workspace: Path, candidate: Candidate) -> None:
    """The candidate's files in the workspace: IDENTITY.md and SOUL.md, then the role card, whose arrival
    is what makes the bot part of the crew (a half-written hire is never loaded: no role card, no bot...)."""
    root = crew_dir(workspace)
    bot_dir = root / "bots" / check_handle(candidate.handle)
    if bot_dir.exists():
        raise CrewError(f"@{candidate.handle} already has a folder in {root / 'bots'}")
    bot_dir.mkdir(parents=True)
    identity = {"name": candidate.name, "title": candidate.title, "emoji": candidate.emoji,
                "catchphrase": candidate.catchphrase, "quirks": "; ".join(candidate.quirks),
                "relationship": f"Hired as the crew's {candidate.role}; reports to @{candidate.supervisor}."}
    _write_card(bot_dir / "IDENTITY.md", identity, "")
    _write_card(bot_dir / "SOUL.md", {}, candidate.soul)
    role = {"handle": candidate.handle, "role": candidate.role, "tools": ", ".join(candidate.tools),
            "skills": ", ".join(candidate.skills), "intents": ", ".join(candidate.intents),
            "supervisor": candidate.supervisor, "tier": candidate.tier}
    _write_card(root / "roles" / f"{candidate.handle}.md", role, candidate.role_card)


def _write_card(path: Path, meta: dict[str, str], body: str) -> None:
    head = "".join(f"{k}: {' '.join(v.split())}\n" for k, v in meta.items() if v)
    text = (f"---\n{head}---\n" if head else "") + body.strip() + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # whole or not at all: a running gateway may read it any moment


def set_supervisor(workspace: Path, crew: Crew, handle: str, supervisor: str) -> str:
    if handle not in crew.bots:
        raise CrewError(f"no active bot @{handle} in this crew")
    supervisor = check_supervisor(crew, handle, supervisor)
    set_field(crew_dir(workspace) / "roles" / f"{handle}.md", "supervisor", supervisor)
    return supervisor


def retire_bot(workspace: Path, crew: Crew, handle: str) -> list[str]:
    """Mark the bot retired on its role card (its files and its messages stay); those who reported to it now
    report to its supervisor. Returns the handles that moved."""
    handle = handle.strip().lstrip("@").lower()
    if handle == LEADER:
        raise CrewError("@leader heads the crew and cannot retire")
    if handle in crew.retired:
        raise CrewError(f"@{handle} is already retired")
    bot = crew.bots.get(handle)
    if bot is None:
        raise CrewError(f"no bot @{handle} in this crew (bots: {', '.join(crew.handles)})")
    roles = crew_dir(workspace) / "roles"
    moved = [h for h, b in crew.bots.items() if b.supervisor == handle]
    for report in moved:
        set_field(roles / f"{report}.md", "supervisor", bot.supervisor or LEADER)
    set_field(roles / f"{handle}.md", "status", "retired")
    return moved


def _section(markdown: str, heading: str) -> str:
    """The text under `## heading`, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\s*\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


def _without_sections(markdown: str, headings: tuple[str, ...]) -> str:
    for heading in headings:
        markdown = re.sub(rf"^## {re.escape(heading)}\s*\n.*?(?=^## |\Z)", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return markdown.strip()
