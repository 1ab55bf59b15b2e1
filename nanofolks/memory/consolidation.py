"""Consolidation: distil the day's events into knowledge entries (facts, decisions, lessons) linked to the
messages they came from (rules, extractive; the model when `memory.consolidation.llm` is on), and merge
near-duplicate entries (weekly)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Protocol

from nanofolks.store.memory import Entry, EntryRepo, Event

if TYPE_CHECKING:
    from nanofolks.llm.client import LLM


class Folding(Protocol):
    """What folding one entry into another needs (the memory service has it)."""

    entries: EntryRepo

    def similar_entries(self, entry_id: int, k: int) -> list[tuple[int, float]]: ...

    def archive_entry(self, entry: Entry, reason: str, now: float, keep_id: int | None = None) -> None: ...

_I = re.IGNORECASE
_KINDS: list[tuple[str, re.Pattern[str], float]] = [
    ("decision", re.compile(r"\b(we|I) (have )?(decided|agreed|chose|settled on)\b|\b(let'?s|we'?ll|we will) go with\b|"
                            r"\bdecision\s*:|\bfrom now on\b", _I), 0.65),
    ("lesson", re.compile(r"\blesson( learned)?\s*:|\blessons? learned\b|\bturns out\b|\bnote to self\b|\bnext time\b|"
                          r"\bthe (fix|problem|issue|cause|trick) (was|is)\b|\bTIL\b", _I), 0.65),
    ("fact", re.compile(r"\b(I am|I'm|I have|I've got|I work|I live|I was born|I own|I use|I speak|I moved)\b|"
                        r"\b[Mm]y [\w ]{1,30}? (is|are|was|were|has|lives|works)\b", 0), 0.5),
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_CHARS = 12
MAX_CHARS = 400


def classify(sentence: str) -> tuple[str, float] | None:
    s = sentence.strip()
    if len(s) < MIN_CHARS or s.endswith("?"):
        return None
    for kind, pattern, importance in _KINDS:
        if pattern.search(s):
            return kind, importance
    return None


def distil(events: list[Event]) -> list[Entry]:
    """Knowledge entries from the user's sentences that state a fact, a decision or a lesson, each linked
    to its message."""
    out = []
    for event in events:
        if event.role != "user":
            continue
        for n, sentence in enumerate(_SENTENCE.split(event.content)):
            found = classify(sentence)
            if found:
                kind, importance = found
                out.append(Entry(text=sentence.strip()[:MAX_CHARS], kind=kind, room_id=event.room_id,
                                 sender=event.sender, importance=importance, origin="consolidation",
                                 origin_key=f"distil:{event.id}:{n}", sources=[event.id],
                                 created_at=event.created_at))
    return out


_LLM_PROMPT = """Below are one day's messages from a chat, each with its id. Distil what is worth remembering for
weeks: facts about the people and their world, decisions taken, lessons learned. Skip small talk.
Answer with JSON only: {"entries": [{"kind": "fact" | "decision" | "lesson", "text": one self-contained sentence,
"sources": [message ids]}]}

"""


async def distil_llm(llm: LLM, model: str, events: list[Event]) -> list[Entry]:
    """The model's distillation of the events (one call per batch); [] when its answer is not usable."""
    by_id = {e.id: e for e in events}
    lines = "\n".join(f"[{e.id}] {e.sender or e.role}: {e.content[:600]}" for e in events)
    result = await llm.chat([{"role": "user", "content": _LLM_PROMPT + lines}], model=model, bot="memory",
                            max_tokens=1024)
    try:
        data: Any = json.loads(result.text[result.text.index("{"):result.text.rindex("}") + 1])
        out = []
        for n, item in enumerate(data["entries"]):
            sources = [int(s) for s in item.get("sources", []) if int(s) in by_id]
            kind = item.get("kind") if item.get("kind") in ("fact", "decision", "lesson") else "fact"
            first = by_id[sources[0]] if sources else events[0]
            out.append(Entry(text=str(item["text"]).strip()[:MAX_CHARS], kind=kind, room_id=first.room_id,
                             sender=first.sender, importance=0.6, origin="consolidation:llm",
                             origin_key=f"distil-llm:{events[0].id}-{events[-1].id}:{n}", sources=sources,
                             created_at=first.created_at))
        return [e for e in out if len(e.text) >= MIN_CHARS]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def merge_duplicates(memory: Folding, similarity: float, now: float) -> int:
    """Fold near-duplicate entries together: the older (or the protected) one stays, with both sources.
    Only entries of one room (or two crew-wide ones) fold: the kept entry takes the other's source messages,
    and a room's entry must never carry what was said in another room, nor hide a crew-wide note."""
    merged = 0
    gone: set[int] = set()
    for entry_id in memory.entries.unprotected_ids():
        if entry_id in gone:
            continue
        entry = memory.entries.get(entry_id)
        if entry is None:
            continue
        for other_id, sim in memory.similar_entries(entry_id, k=6):
            if sim < similarity or other_id in gone:
                continue
            other = memory.entries.get(other_id)
            if other is None or other.room_id != entry.room_id:
                continue
            keep, drop = (other, entry) if (other.protected or other_id < entry_id) else (entry, other)
            if drop.protected:
                continue
            memory.archive_entry(drop, f"merged into #{keep.id}", now, keep_id=keep.id)
            gone.add(int(drop.id or 0))
            merged += 1
            if drop is entry:
                break
    return merged
