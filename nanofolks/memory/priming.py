"""Context assembly: before a bot answers, look up in parallel what the crew remembers that bears on this
message (the sender's preferences and profile, the entities it names, related knowledge, what the sender
said lately in other rooms) and fit it into a token budget, as a block of the system prompt marked as
memory."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any, Protocol

from nanofolks.llm.tokens import count_text
from nanofolks.memory.entities import PEOPLE, PETS
from nanofolks.store.memory import Filters, PreferenceRepo, SearchRepo

if TYPE_CHECKING:
    import numpy as np

    from nanofolks.memory.search import Hit

HEADER = ("## Memory\nWhat you remember from earlier conversations (background, possibly incomplete; the user did "
          "not just say it). Use it when it helps; apply the preferences.")
LINE_CHARS = 240
ELSEWHERE_DAYS = 2
_KINSHIP = re.compile(rf"(?:{PEOPLE}|{PETS})")


class Recall(Protocol):
    """What assembling the memory block needs (the memory service has it)."""

    preferences: PreferenceRepo
    search_repo: SearchRepo

    def query_vector(self, text: str) -> np.ndarray | None: ...

    def profile(self, person: str, rooms: tuple[int, ...] | None = None) -> list[str]: ...

    def entities_named_in(self, text: str, rooms: tuple[int, ...] | None = None) -> list[list[str]]: ...

    def search_with_vector(self, text: str, vector: np.ndarray | None, limit: int,
                           exclude: tuple[int, ...] = (), filters: Filters | None = None) -> list[Hit]: ...


async def assemble(memory: Recall, room_id: int, person: str, text: str, model: str, budget: int,
                   history: int, scope: tuple[int, ...] | None = None) -> str:
    """The memory block for one message of `person` ("telegram:12345": who they are, not the name they
    gave), or '' when nothing is remembered (or the budget is 0). Everything in it was learnt in `scope`,
    the sender's rooms (None: all, for the owner), or is crew-wide."""
    if budget <= 0:
        return ""
    now = time.time()
    vector, prefs, profile, named, elsewhere, shown = await asyncio.gather(
        asyncio.to_thread(memory.query_vector, text),
        asyncio.to_thread(memory.preferences.of, person, scope),
        asyncio.to_thread(memory.profile, person, scope),
        asyncio.to_thread(memory.entities_named_in, text, scope),
        asyncio.to_thread(memory.search_repo.recent_elsewhere, person, room_id, now - ELSEWHERE_DAYS * 86400, 5,
                          scope),
        asyncio.to_thread(memory.search_repo.recent_message_ids, room_id, history),
    )
    hits = await asyncio.to_thread(memory.search_with_vector, text, vector, 6, shown, Filters(rooms=scope))
    sections = [
        ("Preferences of this person (apply them):", [p.text for p in prefs]),
        ("About this person:", profile),
        ("People and things mentioned:", [line for e in named for line in e]),
        ("Related memories:", [f"({_when(h.item.created_at)}{', #' + h.item.room if h.item.room else ''}) "
                               f"{h.item.text}" for h in hits]),
        ("Lately in other rooms:", [f"(#{i.room}) {i.text}" for i in elsewhere]),
    ]
    return fit(sections, budget, model)


def fit(sections: list[tuple[str, list[str]]], budget: int, model: str) -> str:
    """Sections in priority order, line by line, until the next line would pass the budget."""
    lines = [HEADER]
    used = count_text(HEADER, model)
    for title, items in sections:
        seen: set[str] = set()
        block: list[str] = []
        for item in items:
            line = "- " + " ".join(item.split())[:LINE_CHARS]
            if line in seen:
                continue
            cost = count_text(line, model) + 1 + (0 if block else count_text(title, model) + 2)
            if used + cost > budget:
                break
            seen.add(line)
            block.append(line)
            used += cost
        if block:
            lines += ["", title, *block]
    return "\n".join(lines) if len(lines) > 1 else ""


def describe(rel: dict[str, Any], sender: str = "") -> str:
    subject = "this person" if rel["subject"] == sender else rel["subject"]
    if _KINSHIP.fullmatch(rel["predicate"]):
        return f"{rel['object']} is {subject}'s {rel['predicate']}"
    return f"{subject} {rel['predicate']} {rel['object']}"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d")
