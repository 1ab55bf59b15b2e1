"""The crew's records on both backends (SQLite and PostgreSQL): changes, the daily count, one hire proposal
per room taken once, a new member joining every room at the end of its member list."""

from __future__ import annotations

from typing import Any

from nanofolks.store.crew import CrewRepo
from nanofolks.store.rooms import RoomRepo


def test_changes_are_recorded_and_counted_by_day(db: Any) -> None:
    repo = CrewRepo(db)
    repo.record("bess", "hired", "alice", "in #general: researcher", now=1_000.0)
    repo.record("jonah", "hired", "cli", now=2_000.0)
    repo.record("bess", "retired", "cli", now=3_000.0)
    assert repo.count_since("hired", 1_500.0) == 1 and repo.count_since("hired", 0) == 2
    assert [(c.action, c.actor) for c in repo.changes("bess")] == [("hired", "alice"), ("retired", "cli")]


def test_one_proposal_per_room_taken_once_and_never_by_its_own_turn(db: Any) -> None:
    rooms = RoomRepo(db)
    general = rooms.create("general", "open", ["leader"])
    repo = CrewRepo(db)
    repo.propose(general.id, "alice", "turn-1", [{"handle": "bess"}])
    repo.propose(general.id, "alice", "turn-2", [{"handle": "nell", "name": "Dread Nell ☠"}])  # replaces
    assert repo.pending(general.id).proposal == [{"handle": "nell", "name": "Dread Nell ☠"}]
    assert repo.take(general.id, "turn-2") is None  # the turn that proposed it cannot agree to it
    taken = repo.take(general.id, "turn-3")
    assert taken is not None and (taken.sender, taken.turn_id) == ("alice", "turn-2")
    assert repo.take(general.id, "turn-4") is None and repo.pending(general.id) is None
    repo.propose(general.id, "alice", "turn-5", [])
    assert repo.drop(general.id) and not repo.drop(general.id)


def test_a_new_member_joins_every_room_last(db: Any) -> None:
    rooms = RoomRepo(db)
    rooms.create("general", "open", ["leader", "coder"])
    rooms.create("ops", "project", ["coder"])
    assert rooms.add_member_everywhere("bess") == 2
    assert rooms.add_member_everywhere("bess") == 0  # already everywhere
    assert rooms.get("general").members == ["leader", "coder", "bess"]
    assert rooms.get("ops").members == ["coder", "bess"]
