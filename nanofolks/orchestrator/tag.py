"""Step 1, tag: find @mentions (by handle or character name), @all / @crew, and action words."""

from __future__ import annotations

import re

from nanofolks.crew.crew import Crew
from nanofolks.orchestrator.turn import Tags

_MENTION = re.compile(r"(?<![\w@.])@([^\W_][\w-]*)", re.UNICODE)
EVERYONE = {"all", "crew", "everyone", "team"}

ACTION_WORDS: dict[str, tuple[str, ...]] = {
    "build": ("build", "implement", "scaffold", "deploy", "create an app", "set up"),
    "code": ("code", "coding", "function", "script", "python", "javascript", "typescript", "sql", "regex", "refactor"),
    "debug": ("debug", "debugging", "bug", "error", "traceback", "exception", "fix", "crash", "broken"),
    "research": ("research", "find out", "look up", "investigate", "sources", "compare", "what is known"),
    "analyze": ("analyze", "analyse", "analysis", "data", "statistics", "trend"),
    "write": ("write", "writing", "draft", "essay", "story", "poem", "blog", "article", "copy", "rewrite"),
    "design": ("design", "logo", "layout", "mockup", "ui", "palette", "brand"),
    "brainstorm": ("brainstorm", "ideas", "idea", "name for", "names for", "suggestions"),
    "social": ("tweet", "post", "linkedin", "instagram", "community", "newsletter", "reply to"),
    "announce": ("announce", "announcement", "launch post", "press release"),
    "review": ("review", "feedback on", "critique", "proofread"),
    "test": ("test", "tests", "testing", "qa", "verify", "validate"),
    "audit": ("audit", "security", "compliance", "risk", "vulnerable", "vulnerability", "vulnerabilities"),
    "plan": ("plan", "planning", "roadmap", "schedule", "prioritize", "prioritise", "milestone", "strategy"),
    "decide": ("decide", "decision", "choose between", "which should", "pros and cons"),
}

_WORD_PATTERNS = {
    action: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    for action, words in ACTION_WORDS.items()
}


def tag(text: str, crew: Crew) -> Tags:
    tags = Tags()
    for name in _MENTION.findall(text):
        lowered = name.lower()
        if lowered in EVERYONE:
            tags.everyone = True
            continue
        bot = crew.resolve(lowered)
        if bot is None and (gone := crew.resolve_retired(lowered)) is not None:
            if gone.handle not in tags.retired:
                tags.retired.append(gone.handle)
        elif bot is None:
            if lowered not in tags.unknown:
                tags.unknown.append(lowered)
        elif bot.handle not in tags.bots:
            tags.bots.append(bot.handle)
    tags.actions = [action for action, pattern in _WORD_PATTERNS.items() if pattern.search(text)]
    return tags
