"""The crew's owner is known by platform and sender id only: a stranger who takes the owner's name as their
display name gets neither the owner's room, nor every room's memory, nor the owner's commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.channels.access import is_owner
from nanofolks.channels.registry import CHANNELS
from nanofolks.config.schema import Config
from nanofolks.crew.crew import install_team
from nanofolks.gateway.commands import OWNER_ONLY
from nanofolks.gateway.turns import Answerer
from nanofolks.routines.activity import Activity
from nanofolks.services import Services
from nanofolks.store.inbox import InboxRepo, InboxRow

OWNER, OTHER = "111", "222"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    config = Config()
    config.workspace = str(tmp_path / "ws")
    install_team(tmp_path / "ws", "pirate_crew")
    config.channels.telegram.allow_from = [OWNER, OTHER]
    services = Services.open(config, tmp_path / "t.db")
    services.rooms.general()
    yield services
    services.close()


async def nothing() -> None:
    return None


def row(services: Services, sender: str, name: str, text: str, n: int) -> int:
    """A direct message as the ingress stores it: the name is the username, else the display name."""
    inbox_id = InboxRepo(services.db).add(InboxRow("telegram", "999", chat_id=sender, message_id=str(n), text=text,
                                           sender_id=sender, sender_name=name))
    assert inbox_id is not None
    return inbox_id


def test_the_owner_is_the_first_allowfrom_entry_by_sender_id_only() -> None:
    assert is_owner(["@111", "bob"], "111") and is_owner(["*", "111"], "111")
    assert not is_owner(["111"], "222") and not is_owner(["alice"], "222") and not is_owner([], "111")


async def test_a_stranger_named_like_the_owner_gets_nothing_of_the_owners(services: Services) -> None:
    answerer = Answerer(services, nothing, Activity(10, 10))
    spoof = row(services, OTHER, OWNER, "/rooms", 1)  # display name "111", the owner's id
    await answerer.answer(None, CHANNELS["telegram"], spoof)  # type: ignore[arg-type]
    assert [r[0] for r in services.db.query("SELECT text FROM outbox WHERE inbox_id = ?", (spoof,))] == [OWNER_ONLY]

    _, room, scope = answerer._load(row(services, OTHER, OWNER, "hello", 2))
    assert room is not None and room.name == f"telegram-dm-{OTHER}" and scope == (room.id,)  # only his own room

    _, room, scope = answerer._load(row(services, OWNER, "alice", "hello", 3))
    assert room is not None and room.name == "general" and scope is None  # the owner: every room
