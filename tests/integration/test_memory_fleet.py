"""Memory in a fleet of gateways on PostgreSQL: only the holder of the `memory` lock learns, embeds and
consolidates; another worker's search still finds what the holder embedded, and it takes over when the
holder stops (gateway/core.py serve)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from nanofolks.config.schema import Config
from nanofolks.memory.service import MemoryService
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import RoomRepo
from tests.fakes.embedder import HashEmbedder


async def eventually(check: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def worker_memory(pg_url: str, home: Path) -> MemoryService:
    from nanofolks.store.postgres import PgDatabase

    home.mkdir()
    memory = MemoryService(Config(), PgDatabase(pg_url, local_dir=home), embedder=HashEmbedder())
    memory.follow()  # as serve() does on a fleet, until the `memory` lock is held
    return memory


async def take_memory_lock(fleet, memory: MemoryService) -> None:  # noqa: ANN001 - a joined Fleet
    await fleet.hold("memory")
    memory.lead()


def say(memory: MemoryService, text: str) -> None:
    room = RoomRepo(memory.db).ensure("general", "open", ["leader"]).id
    MessageRepo(memory.db).add(Message(room, "user", "user", text, sender="ana", person="telegram:ana",
                                       created_at=time.time()))
    memory.note_messages()


async def test_only_the_lock_holder_learns_and_embeds_and_a_survivor_takes_over(pg_url: str, tmp_path: Path) -> None:
    from nanofolks.gateway.fleet import Fleet

    one, two = Fleet(pg_url), Fleet(pg_url)
    first, second = worker_memory(pg_url, tmp_path / "one"), worker_memory(pg_url, tmp_path / "two")
    await one.join()
    await two.join()
    try:
        say(second, "remember that my passport expires in May")  # stored by the worker that answered it
        assert await asyncio.to_thread(second.index_pending) == 0  # a follower neither learns nor embeds
        assert second.vectors.pending_count() == 1
        await take_memory_lock(one, first)  # the holder's worker starts with what is pending
        standby = asyncio.create_task(take_memory_lock(two, second))
        await eventually(lambda: first.wait_indexed(0.1))
        assert first.embedder.calls > 0
        assert second.embedder.calls == 0  # the follower embedded nothing
        notes = first.db.query("SELECT text FROM memory_entries WHERE origin = ?", ("chat:remember",))
        assert [r["text"] for r in notes] == ["My passport expires in May"]  # learnt once

        hits = await asyncio.to_thread(second.search, "passport expires", 5)  # its own index caught up
        assert any("passport" in h.item.text and h.similarity is not None for h in hits)
        assert not standby.done()

        await one.leave()  # the holder stops: its lock goes with its session
        await asyncio.wait_for(standby, 30)
        say(second, "I really love hiking in the Alps on weekends")
        await eventually(lambda: second.wait_indexed(0.1))
        assert second.embedder.calls > 0
        hits = await asyncio.to_thread(second.search, "hiking Alps", 5)
        assert any("hiking" in h.item.text and h.similarity is not None for h in hits)
    finally:
        for memory in (first, second):
            memory.close()
            memory.db.close()
        await one.leave()
        await two.leave()
