"""The activity timeline (one query over messages, the work log and the `activity` table), the errors the
gateway keeps for it, and what bots are doing now."""

from __future__ import annotations

import asyncio
import logging

import pytest

from nanofolks.agent.presence import Presence
from nanofolks.gateway.logs import ErrorsToActivity
from nanofolks.secrets.sanitize import remember
from nanofolks.store.activity import ActivityRepo, Cursor
from nanofolks.store.db import Database
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import RoomRepo
from nanofolks.store.worklog import WorkEntry, WorkLogRepo


def test_the_timeline_merges_every_source_newest_first_and_filters(db: Database) -> None:
    rooms = RoomRepo(db)
    general, ops = rooms.create("general", "open", ["leader"]), rooms.create("ops", "project", ["coder"])
    messages, work, activity = MessageRepo(db), WorkLogRepo(db), ActivityRepo(db)
    messages.add(Message(general.id, "user", "user", "plan the voyage", sender="alice", created_at=1.0))
    messages.add(Message(general.id, "leader", "assistant", "Aye", created_at=2.0))
    messages.add(Message(general.id, "leader", "tool", "raw output", kind="tool_result", created_at=2.5))  # not shown
    work.add(WorkEntry(ops.id, "coder", "tool", "exec ls", created_at=3.0))
    work.add(WorkEntry(general.id, "leader", "delegation", "delegated to @coder: fix it", created_at=4.0, ok=False))
    activity.add("consolidation", "memory consolidated: 2 events")
    timeline = activity.timeline()
    assert [(i.kind, i.bot, i.room) for i in timeline] == [
        ("consolidation", "", ""), ("delegation", "leader", "general"), ("tool", "coder", "ops"),
        ("message", "leader", "general"), ("message", "alice", "general")]
    assert not timeline[1].ok
    assert [i.kind for i in activity.timeline(room_id=ops.id)] == ["tool"]
    assert [i.summary for i in activity.timeline(who="leader")] == ["delegated to @coder: fix it", "Aye"]

    seen = Cursor().past(timeline)
    assert activity.timeline(after=seen) == []
    work.add(WorkEntry(ops.id, "coder", "file", "wrote notes.md", created_at=5.0))
    fresh = activity.timeline(after=Cursor.parse(seen.text()))  # the cursor survives a round trip as text
    assert [i.summary for i in fresh] == ["wrote notes.md"]
    assert Cursor.parse("garbage") == Cursor()


def test_only_what_nothing_else_records_goes_in_the_activity_table(db: Database) -> None:
    with pytest.raises(ValueError, match="unknown activity kind 'tool'"):
        ActivityRepo(db).add("tool", "exec ls")


async def test_logged_errors_reach_the_timeline_masked_and_bounded(db: Database) -> None:
    remember("sk-live-secretvalue-123456")
    errors = ErrorsToActivity(keep=2)
    logger = logging.getLogger("nanofolks.test_dashboard")
    logger.addHandler(errors)
    try:
        logger.warning("not an error")
        for n in range(3):
            logger.error("send failed %d with key %s\nsecond line", n, "sk-live-secretvalue-123456")
    finally:
        logger.removeHandler(errors)
    repo = ActivityRepo(db)
    flushing = asyncio.create_task(errors.flush_into(repo, every=0.01))
    try:
        for _ in range(200):
            if len(repo.timeline()) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        flushing.cancel()
    assert [(i.kind, i.summary, i.ok) for i in repo.timeline()] == [
        ("error", "test_dashboard: send failed 2 with key ***", False),
        ("error", "test_dashboard: send failed 1 with key ***", False)]  # the newest two, first lines only


def test_presence_says_what_a_bot_is_doing_across_overlapping_turns() -> None:
    presence = Presence()
    assert presence.of("coder") == "idle"
    with presence.doing("coder", "thinking"):
        assert presence.of("coder") == "thinking"
        with presence.doing("coder", "working"):
            assert presence.of("coder") == "working"
        with presence.doing("coder", "thinking"):  # a second turn's model call
            pass
        assert presence.of("coder") == "thinking"
    assert presence.of("coder") == "idle" and presence.of("leader") == "idle"
