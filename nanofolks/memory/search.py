"""Hybrid search: SQLite FTS5 (keywords, names, numbers) and the vector index (meaning), fused by
reciprocal rank, with recency and importance as gentle boosts, and filters by room, bot and time."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanofolks.store.memory import Filters, Item, SearchRepo, VectorRepo

if TYPE_CHECKING:
    import numpy as np

    from nanofolks.memory.index import VectorIndex

# Ranks matter, raw scores (bm25, cosine) are not comparable. A smaller k than the usual 60 keeps the gap
# between neighbouring ranks (about 5% at the top) larger than the boosts, so they only break near-ties.
RRF_K = 20
RECENCY_DAYS = 30.0
RECENCY_WEIGHT = 0.04  # at most +4%, for what was said today
IMPORTANCE_WEIGHT = 0.08  # at most +4% (importance 1.0), -4% (importance 0.0)
_STOP_WORDS = """a an the and or but if of to in on at by for with from as is are was were be been am do does did
have has had i me my you your we our they their he she it its this that these those what who whom which when where
why how can could would should will shall may might must not no so than then there here just about into over also
le la les un une des et ou de du en est que qui el los las y es por para con der die das und ist ein eine"""
_STOP = set(_STOP_WORDS.split())


@dataclass
class Hit:
    item: Item
    score: float
    similarity: float | None  # cosine, when the vector search found it
    keyword_rank: int | None  # 1-based, when full-text search found it

    def as_dict(self) -> dict:
        it = self.item
        return {
            "text": it.text, "score": round(self.score, 6), "source": f"{it.source}:{it.id}", "id": it.id,
            "kind": it.kind, "room": it.room, "author": it.author, "created_at": it.created_at,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "keyword_rank": self.keyword_rank, "protected": it.protected,
        }


def fts_query(text: str) -> str:
    """A safe FTS5 query from free text: each meaningful word quoted, any of them may match."""
    words = []
    for w in re.findall(r"\w+", text.lower()):
        if (len(w) > 1 or w.isdigit()) and w not in _STOP and w not in words:
            words.append(w)
    return " OR ".join(f'"{w}"' for w in words[:24])


def hybrid_search(
    repo: SearchRepo,
    vectors: VectorRepo,
    index: VectorIndex | None,
    query_vector: np.ndarray | None,
    text: str,
    limit: int = 10,
    filters: Filters | None = None,
    exclude: tuple[int, ...] = (),
    now: float | None = None,
) -> list[Hit]:
    """The best `limit` entries and messages for `text`. `exclude` holds message ids the caller
    already shows (the room's recent history)."""
    filters = filters or Filters()
    depth = max(limit * 4, 40)
    keyword: dict[tuple[str, int], int] = {}
    match = fts_query(text)
    if match:
        # Entries and messages are two bm25 lists, not on one scale: each ranks within its own list.
        for n, i in enumerate(repo.fts_entries(match, depth, filters)):
            keyword[("entry", i)] = n + 1
        for n, i in enumerate(repo.fts_messages(match, depth, filters, exclude)):
            keyword[("message", i)] = n + 1
    semantic: dict[tuple[str, int], tuple[int, float]] = {}
    if index is not None and query_vector is not None and len(index):
        filtered = (filters.room_id is not None or filters.rooms is not None or filters.bot or filters.since
                    or filters.until)
        hits = index.search(query_vector, depth * (5 if filtered else 1))
        refs = vectors.refs([label for label, _ in hits])
        rank = 0
        for label, sim in hits:
            ref = refs.get(label)
            if ref and ref not in semantic and not (ref[0] == "message" and ref[1] in exclude):
                rank += 1
                semantic[ref] = (rank, sim)
    candidates = set(keyword) | set(semantic)
    items = repo.items(list(candidates), filters)
    now = now or time.time()
    hits_out = []
    for ref, item in items.items():
        score = 0.0
        if ref in keyword:
            score += 1.0 / (RRF_K + keyword[ref])
        if ref in semantic:
            score += 1.0 / (RRF_K + semantic[ref][0])
        age_days = max(0.0, (now - item.created_at) / 86400)
        score *= 1 + RECENCY_WEIGHT * math.exp(-age_days / RECENCY_DAYS)
        score *= 1 + IMPORTANCE_WEIGHT * (item.importance - 0.5)
        hits_out.append(Hit(item, score, semantic[ref][1] if ref in semantic else None, keyword.get(ref)))
    # A message that an entry was distilled from says the same thing: show the entry only.
    cited = repo.sources_of([h.item.id for h in hits_out if h.item.source == "entry"])
    hits_out = [h for h in hits_out if not (h.item.source == "message" and h.item.id in cited)]
    hits_out.sort(key=lambda h: h.score, reverse=True)
    return hits_out[:limit]
