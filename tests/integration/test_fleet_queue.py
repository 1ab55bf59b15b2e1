"""The fleet's work queue, leases and locks (store/fleet.py, gateway/fleet.py) on a real PostgreSQL server:
several workers are several connections, a worker killed with kill -9 is a connection that died."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from nanofolks.store.inbox import InboxRepo, InboxRow, mark_done
from nanofolks.store.leases import RoomLeases


@pytest.fixture
def pg_db(pg_url: str, tmp_path) -> Iterator:  # noqa: ANN001 - pg_url (tests/conftest.py) skips without a server
    from nanofolks.store.postgres import PgDatabase

    database = PgDatabase(pg_url, local_dir=tmp_path)
    yield database
    database.close()


@pytest.fixture
async def connect(pg_url: str, pg_db) -> AsyncIterator:  # noqa: ANN001 - pg_db: the migrated schema
    """Open a worker's lock connection and its FleetRepo; all closed at the end."""
    from psycopg import AsyncConnection

    from nanofolks.store.fleet import FleetRepo, prepare_session

    opened = []

    async def open_repo() -> FleetRepo:
        conn = await AsyncConnection.connect(pg_url, autocommit=True)
        opened.append(conn)
        return FleetRepo(conn, await prepare_session(conn))

    yield open_repo
    for conn in opened:
        await conn.close()


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 20) -> object:
    """The first truthy answer of `check`: a closed session's locks go when its server process has exited,
    a moment after the client hung up."""
    deadline = time.monotonic() + timeout
    while not (answer := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return answer


def message(chat: str, n: int) -> InboxRow:
    return InboxRow(platform="telegram", account="1", chat_id=chat, message_id=str(n), text=f"{chat} {n}")


def answer(db, inbox_id: int) -> None:  # noqa: ANN001
    with db.write() as conn:
        assert mark_done(conn, inbox_id, [])


async def test_a_chat_is_claimed_one_message_at_a_time_in_order(pg_db, connect) -> None:  # noqa: ANN001
    inbox = InboxRepo(pg_db)
    a1, a2, b1, a3 = (inbox.add(message(c, n)) for c, n in (("a", 1), ("a", 2), ("b", 1), ("a", 3)))
    one, two = await connect(), await connect()
    w1, w2 = await one.join("host", 1), await two.join("host", 2)
    assert await one.claim(w1, 15) == (a1, "telegram", "1")
    assert (await two.claim(w2, 15))[0] == b1  # a2 waits for a1, whoever holds it
    assert await two.claim(w2, 15) is None
    answer(pg_db, a1)
    assert (await two.claim(w2, 15))[0] == a2
    answer(pg_db, a2)
    assert (await one.claim(w1, 15))[0] == a3


async def test_concurrent_claims_never_hand_one_message_to_two_workers(pg_db, connect) -> None:  # noqa: ANN001
    inbox = InboxRepo(pg_db)
    ids = {inbox.add(message(f"chat{i}", 1)) for i in range(30)}
    repos = [await connect() for _ in range(3)]
    workers = [await repo.join("host", pid) for pid, repo in enumerate(repos)]

    async def drain(repo, worker: int) -> list[int]:  # noqa: ANN001
        got = []
        while (claimed := await repo.claim(worker, 15)) is not None:
            got.append(claimed[0])
        return got

    claimed = await asyncio.gather(*(drain(repo, w) for repo, w in zip(repos, workers, strict=True)))
    every = [i for got in claimed for i in got]
    assert sorted(every) == sorted(ids)  # each exactly once
    assert all(got for got in claimed)  # SKIP LOCKED: nobody waited for the others' rows, all took a share


async def test_a_dead_workers_claims_and_room_leases_are_released_at_once(pg_db, connect) -> None:  # noqa: ANN001
    inbox = InboxRepo(pg_db)
    first = inbox.add(message("a", 1))
    dying, survivor = await connect(), await connect()
    dead, alive = await dying.join("other-host", 4242), await survivor.join("host", 2)
    assert (await dying.claim(dead, 15))[0] == first
    room = pg_db.query_one("INSERT INTO rooms (name, type, created_at) VALUES ('r', 'open', 0) RETURNING id")[0]
    assert RoomLeases(pg_db).take(room, "other-host:4242:nonce")
    assert {w.id for w in await survivor.workers()} == {dead, alive}
    assert await survivor.claim(alive, 15) is None  # leased for 15 s more

    await dying.conn.close()  # kill -9: the server ends the session, its advisory locks with it
    assert await eventually(survivor.reap) == 1
    assert [w.id for w in await survivor.workers()] == [alive]
    assert (await survivor.claim(alive, 15))[0] == first
    assert RoomLeases(pg_db).take(room, "host:2:nonce")  # not the 30 s wait for the lease to expire
    assert await survivor.reap() == 0


async def test_a_hung_worker_is_ended_and_its_bot_taken_over(pg_db, connect) -> None:  # noqa: ANN001
    import psycopg

    first = InboxRepo(pg_db).add(message("a", 1))
    stuck, watcher = await connect(), await connect()
    hung, alive = await stuck.join("host", 1), await watcher.join("host", 2)
    assert await stuck.try_lock("telegram-abc") and (await stuck.claim(hung, 15))[0] == first
    assert await watcher.end_hung(30) == 0  # both beat just now
    await watcher.conn.execute("UPDATE workers SET seen_at = seen_at - 31 WHERE id = %s", (hung,))  # 31 s silent
    assert await watcher.end_hung(30) == 1
    assert await eventually(watcher.reap) == 1
    assert (await watcher.claim(alive, 15))[0] == first
    assert await watcher.try_lock("telegram-abc")
    with pytest.raises(psycopg.OperationalError):  # were it to run again, it finds its session ended and stops
        await stuck.beat(hung, [], 15)


async def test_leases_expire_unless_renewed_and_failed_messages_wait(pg_db, connect) -> None:  # noqa: ANN001
    inbox = InboxRepo(pg_db)
    first, second = inbox.add(message("a", 1)), inbox.add(message("b", 1))
    hung, other = await connect(), await connect()
    w1, w2 = await hung.join("host", 1), await other.join("host", 2)
    assert (await hung.claim(w1, -1))[0] == first  # a lease that has already run out: a hung holder
    assert (await other.claim(w2, 15))[0] == first  # taken over although its holder still lives
    assert (await hung.claim(w1, -1))[0] == second
    assert await hung.beat(w1, [], 15)  # the heartbeat renews it
    assert await other.claim(w2, 15) is None

    await hung.park(second, w1, 30)  # its answer failed: retried in 30 s, by anyone
    assert await other.claim(w2, 15) is None
    with pg_db.write() as conn:  # 30 s later
        conn.execute("UPDATE inbox SET lease_until = ? WHERE id = ?", (time.time() - 1, second))
    assert (await other.claim(w2, 15))[0] == second


async def test_named_locks_have_one_holder_and_move_when_it_dies(connect) -> None:  # noqa: ANN001
    one, two = await connect(), await connect()
    await one.join("host", 1)
    w2 = await two.join("host", 2)
    assert await one.try_lock("telegram-abc") and await one.try_lock("telegram-abc")  # re-entrant for its holder
    assert not await two.try_lock("telegram-abc")
    assert await two.try_lock("scheduler")
    await one.conn.close()
    assert await eventually(lambda: two.try_lock("telegram-abc"))
    await two.unlock("scheduler")
    three = await connect()
    assert await three.try_lock("scheduler") and not await three.try_lock("telegram-abc")
    await two.conn.execute("DELETE FROM workers WHERE id = %s", (w2,))
    assert not await two.beat(w2, [], 15)  # taken for dead: the worker must stop


async def test_a_worker_whose_session_ends_stops(pg_url: str, pg_db) -> None:  # noqa: ANN001
    import psycopg

    from nanofolks.gateway.fleet import Fleet
    from nanofolks.store.db import StoreError

    fleet = Fleet(pg_url)
    await fleet.join()
    running = asyncio.create_task(fleet.run())
    with psycopg.connect(pg_url, autocommit=True) as admin:  # a network cut, an administrator, a failover
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                      (f"nanofolks worker {socket.gethostname()}:{os.getpid()}",))
    with pytest.raises(StoreError, match="lost the database connection"):
        await asyncio.wait_for(running, 30)
    await fleet.leave()


async def test_fleet_notifications_wake_the_other_workers(pg_url: str, pg_db) -> None:  # noqa: ANN001
    from nanofolks.gateway.fleet import Fleet

    one, two = Fleet(pg_url), Fleet(pg_url)
    await one.join()
    await two.join()
    runs = [asyncio.create_task(f.run()) for f in (one, two)]
    woken = asyncio.Event()
    two.senders["telegram:1"] = woken.set
    try:
        two.claimable.clear()
        await one.notify_inbox()
        await asyncio.wait_for(two.claimable.wait(), 10)
        await one.notify_outbox("telegram", "1")  # not one's bot: the worker polling it is told
        await asyncio.wait_for(woken.wait(), 10)
        await one.hold("telegram-abc", platform="telegram")
        deadline = time.monotonic() + 10
        while "telegram-abc" not in two.held_by_fleet():  # seen by the others at the next heartbeat
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        for run in runs:
            run.cancel()
        await one.leave()
        await two.leave()
