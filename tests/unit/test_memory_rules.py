"""The memory's cheap rules: entities, preferences, "remember that", full-text queries, passages, distilling."""

from __future__ import annotations

import pytest

from nanofolks.cli.memory import split_passages
from nanofolks.llm.tokens import count_text
from nanofolks.memory.consolidation import classify, distil
from nanofolks.memory.entities import SELF, extract, mentioned_names
from nanofolks.memory.preferences import detect, remember_note
from nanofolks.memory.priming import HEADER, fit
from nanofolks.memory.search import fts_query
from nanofolks.store.memory import Event


@pytest.mark.parametrize(("text", "name", "type_", "relation"), [
    ("my dog Rex loves the beach", "Rex", "pet", (SELF, "dog", "Rex")),
    ("Lucas is my brother.", "Lucas", "person", (SELF, "brother", "Lucas")),
    ("My sister is called Emma", "Emma", "person", (SELF, "sister", "Emma")),
    ("I work at Acme Corp these days", "Acme Corp", "organization", (SELF, "works at", "Acme Corp")),
    ("I live in Lisbon now", "Lisbon", "place", (SELF, "lives in", "Lisbon")),
    ("Marta works for Globex Inc", "Globex Inc", "organization", ("Marta", "works at", "Globex Inc")),
])
def test_entity_rules_find_names_types_and_relations(text: str, name: str, type_: str, relation: tuple) -> None:
    found = extract(text)
    assert found.entities.get(name) == type_
    assert relation in found.relations


def test_entity_rules_orgs_contacts_aliases_and_noise() -> None:
    found = extract("Send the report to bob@example.com, see https://example.org/doc. "
                    "Then we met Robert (Bob) from Initech Labs on Monday.")
    assert found.entities["bob@example.com"] == "contact"
    assert found.entities["https://example.org/doc"] == "link"
    assert found.entities["Initech Labs"] == "organization"
    assert found.aliases["Robert"] == ["Bob"]
    assert "Bob" not in found.entities  # an alias, not a second entity
    assert "Monday" not in found.entities and "Then" not in found.entities


def test_mentioned_names_include_pairs_for_multiword_aliases() -> None:
    names = mentioned_names("did Acme Corp call back?")
    assert "Acme Corp" in names and "Acme" in names


@pytest.mark.parametrize(("text", "key", "pref"), [
    ("keep it short please", "length", "Keep answers short."),
    ("Could you be more concise", "length", "Keep answers short."),
    ("I prefer bullet points", "format", "Use bullet points."),
    ("no emojis!", "emoji", "Don't use emojis."),
    ("Don't call me sir.", "not-called:sir", "Never call them 'sir'."),
    ("please answer in French", "language", "Answer in French."),
    ("sois bref", "length", "Keep answers short."),
])
def test_preferences_are_detected(text: str, key: str, pref: str) -> None:
    assert (key, pref) in detect(text)


def test_ordinary_messages_state_no_preference() -> None:
    assert detect("what's the weather in Paris tomorrow?") == []
    assert detect("I like pizza") == []


@pytest.mark.parametrize(("text", "note"), [
    ("remember that my passport expires in May", "My passport expires in May"),
    ("@leader please remember: the wifi password is on the fridge", "The wifi password is on the fridge"),
    ("Souviens-toi que Marie arrive lundi", "Marie arrive lundi"),
    ("recuerda que mi vuelo sale a las 9", "Mi vuelo sale a las 9"),
])
def test_remember_notes(text: str, note: str) -> None:
    assert remember_note(text) == note


@pytest.mark.parametrize("text", ["I remember that day", "remember to buy milk", "do you remember?"])
def test_not_remember_notes(text: str) -> None:
    assert remember_note(text) is None


def test_fts_query_is_safe_for_any_input() -> None:
    assert fts_query('who is "Lucas" AND NOT (xy*)?') == '"lucas" OR "xy"'
    assert fts_query("the a of ?!") == ""
    assert fts_query("room 42") == '"room" OR "42"'


def test_split_passages_keeps_headings_and_limits_size() -> None:
    text = "# Trip\n\nWe fly on May 3.\n\nHotel is booked.\n\n## Food\n\n" + "Tapas are great. " * 200
    passages = split_passages(text, limit=300)
    assert passages[0].startswith("Trip: We fly on May 3.") and "Hotel is booked." in passages[0]
    assert all(len(p) <= 320 for p in passages)
    assert any(p.startswith("Food: Tapas") for p in passages)


def test_distil_keeps_facts_decisions_lessons_from_the_user_only() -> None:
    events = [
        Event(1, 1, "user", "We decided to use Postgres. What do you think?", "ana", 10.0),
        Event(2, 1, "user", "Turns out the bug was a timezone issue.", "ana", 11.0),
        Event(3, 1, "user", "I work as a nurse in Porto.", "ana", 12.0),
        Event(4, 1, "assistant", "I am a bot and we decided nothing.", "", 13.0),
        Event(5, 1, "user", "hello there!", "ana", 14.0),
    ]
    got = {(e.kind, e.text, tuple(e.sources)) for e in distil(events)}
    assert got == {("decision", "We decided to use Postgres.", (1,)),
                   ("lesson", "Turns out the bug was a timezone issue.", (2,)),
                   ("fact", "I work as a nurse in Porto.", (3,))}
    assert classify("Is my dog allowed here?") is None  # questions are not facts


def test_priming_fit_respects_the_budget() -> None:
    items = [f"memory number {i} about the beach house and the boat trip" for i in range(100)]
    for budget in (60, 120, 400):
        block = fit([("Related memories:", items)], budget, "")
        assert block.startswith(HEADER)
        assert count_text(block) <= budget
    assert fit([("Related memories:", items)], 10, "") == ""  # not even the header fits: no block
    assert fit([("Related memories:", [])], 400, "") == ""


@pytest.mark.timeout(30)
def test_a_huge_word_is_read_in_linear_time_and_the_names_around_it_still_found() -> None:
    """40 kB without a space (a pasted key or blob) made the name patterns backtrack for minutes."""
    found = extract("A" * 20_000 + " Lucas is my brother. " + "Bxy" * 7_000 + " I work at Acme Corp")
    assert ("@self", "brother", "Lucas") in [(s if s != SELF else "@self", p, o) for s, p, o in found.relations]
    assert found.entities.get("Acme Corp") == "organization"
    assert not any(len(name) > 64 for name in found.entities)
