"""The inbox and outbox: dedupe, exactly-once replies per turn, the send state machine, the send worker."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from nanofolks.bus.outbox import SendWorker
from nanofolks.channels.base import SendError
from nanofolks.channels.messages import OutboundMessage
from nanofolks.store.db import Database
from nanofolks.store.inbox import InboxRepo, InboxRow, mark_done
from nanofolks.store.outbox import OutboxRepo, OutboxRow
from tests.conftest import database_before


def row(key: str, text: str = "hi", chat: str = "1") -> OutboxRow:
    return OutboxRow(key=key, platform="telegram", account="999", chat_id=chat, text=text)


def message(message_id: str = "7") -> InboxRow:
    return InboxRow(platform="telegram", account="999", chat_id="1", message_id=message_id, text="hello")


def test_inbox_recognises_a_redelivered_message(db: Database) -> None:
    inbox = InboxRepo(db)
    first = inbox.add(message())
    assert first is not None
    assert inbox.add(message()) is None
    assert inbox.add(InboxRow(platform="telegram", account="999", chat_id="2", message_id="7", text="x")) is not None
    assert [r.id for r in inbox.pending("telegram", "999")][0] == first


def test_a_turn_queues_its_replies_exactly_once(db: Database) -> None:
    inbox, outbox = InboxRepo(db), OutboxRepo(db)
    inbox_id = inbox.add(message())
    assert inbox_id is not None
    with db.write() as conn:
        assert mark_done(conn, inbox_id, [row("inbox:1:0", "a"), row("inbox:1:1", "b")])
    with db.write() as conn:
        assert not mark_done(conn, inbox_id, [row("inbox:1:2", "again")])  # a re-run queues nothing
    assert inbox.pending("telegram", "999") == []
    assert outbox.get("inbox:1:2") is None
    assert outbox.counts() == {("telegram", "999"): {"pending": 2}}
    outbox.enqueue([row("inbox:1:0", "duplicate key")])
    assert outbox.get("inbox:1:0").text == "a"  # the idempotency key keeps the first


def test_outbox_state_machine(db: Database) -> None:
    outbox = OutboxRepo(db)
    outbox.enqueue([row("a"), row("b"), row("c"), row("d")])
    a = outbox.next_pending("telegram", "999")
    assert a is not None and a.key == "a"
    assert not outbox.delivered(a.id, "1")  # only a row being sent can be delivered
    assert outbox.claim(a.id) and not outbox.claim(a.id)
    assert outbox.delivered(a.id, "55")
    assert outbox.get("a").platform_message_id == "55" and outbox.get("a").attempts == 1
    assert not outbox.claim(a.id) and not outbox.failed(a.id, "x")  # delivered is final

    b = outbox.next_pending("telegram", "999")
    assert b.key == "b" and outbox.claim(b.id)
    assert outbox.retry_later(b.id, "429", at=123.0)
    assert outbox.get("b").status == "pending" and outbox.get("b").next_attempt_at == 123.0
    assert outbox.claim(b.id) and outbox.uncertain(b.id, "timed out")
    assert outbox.get("b").status == "uncertain" and not outbox.claim(b.id)  # never resent by itself

    c = outbox.get("c")
    assert outbox.claim(c.id)  # ... and the process dies here
    assert outbox.recover("telegram", "999") == 1
    assert outbox.get("c").status == "uncertain"
    assert outbox.next_pending("telegram", "999").key == "d"
    assert outbox.next_pending("slack", "999") is None


class ScriptedChannel:
    """A channel double: each send pops the next scripted outcome (an exception or a message id)."""

    platform = "telegram"
    account = "999"

    def __init__(self, outcomes: list[object]):
        self.outcomes = outcomes
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> str:
        self.sent.append(message)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)


async def deliver_all(worker: SendWorker, outbox: OutboxRepo) -> list[str]:
    states = []
    while (pending := outbox.next_pending("telegram", "999")) is not None:
        states.append(await worker.deliver(pending))
    return states


async def test_worker_waits_out_a_429_and_sends_once(db: Database) -> None:
    outbox = OutboxRepo(db)
    outbox.enqueue([row("a", "first"), row("b", "second")])
    channel = ScriptedChannel([SendError("429", retryable=True, retry_after=0.0), 10, 11])
    assert await deliver_all(SendWorker(channel, outbox, db), outbox) == ["pending", "delivered", "delivered"]
    assert [m.text for m in channel.sent] == ["first", "first", "second"]  # order kept
    assert outbox.get("a").attempts == 2 and outbox.get("a").platform_message_id == "10"


async def test_worker_never_resends_what_may_have_been_delivered(db: Database) -> None:
    outbox = OutboxRepo(db)
    outbox.enqueue([row("a"), row("b"), row("c")])
    channel = ScriptedChannel([
        SendError("read timeout", maybe_delivered=True),
        SendError("Forbidden: bot was blocked by the user"),
        12,
    ])
    assert await deliver_all(SendWorker(channel, outbox, db), outbox) == ["uncertain", "failed", "delivered"]
    assert len(channel.sent) == 3
    assert outbox.counts()[("telegram", "999")] == {"uncertain": 1, "failed": 1, "delivered": 1}
    assert "blocked" in outbox.get("b").error


async def test_worker_backs_off_on_server_errors(db: Database) -> None:
    outbox = OutboxRepo(db)
    outbox.enqueue([row("a")])
    worker = SendWorker(ScriptedChannel([SendError("Bad Gateway", retryable=True)]), outbox, db)
    assert await worker.deliver(outbox.next_pending("telegram", "999")) == "pending"
    assert outbox.get("a").next_attempt_at > 0 and "Bad Gateway" in outbox.get("a").error


def queue_raw(conn: sqlite3.Connection, key: str, platform: str, text: str, status: str = "pending",
              later: float = 0.0) -> None:
    at = time.time() + later
    conn.execute("INSERT INTO outbox (key, platform, account, chat_id, text, status, created_at, updated_at)"
                 " VALUES (?, ?, 'acct', '1', ?, ?, ?, ?)", (key, platform, text, status, at, at))


def texts(db: Database) -> dict[str, str]:
    return {r["key"]: r["text"] for r in db.query("SELECT key, text FROM outbox")}


def test_rows_queued_as_markdown_before_the_upgrade_are_sent_rendered(tmp_path: Path) -> None:
    # The version before replies were rendered at queue time stored Markdown; its adapters converted at send.
    conn = database_before(tmp_path / "old.db", "m008_routing_tiers_spend")
    for platform in ("telegram", "slack", "whatsapp", "discord"):
        queue_raw(conn, platform, platform, "**Lunch** at [Rosa](https://rosa.example) <3")
    queue_raw(conn, "sent", "telegram", "**already** delivered", status="delivered")
    conn.close()

    db = Database(tmp_path / "old.db")
    got = texts(db)
    assert got["telegram"] == '<b>Lunch</b> at <a href="https://rosa.example">Rosa</a> &lt;3'
    assert got["slack"] == "*Lunch* at <https://rosa.example|Rosa> &lt;3"
    assert got["whatsapp"] == "*Lunch* at Rosa (https://rosa.example) <3"
    assert got["discord"] == "**Lunch** at [Rosa](https://rosa.example) <3"  # Discord renders Markdown itself
    assert got["sent"] == "**already** delivered"  # history stays as it was
    db.close()


def test_rows_the_renderer_queued_are_not_rendered_twice(tmp_path: Path) -> None:
    conn = database_before(tmp_path / "new.db", "m010_house_outbox_rendered")  # the renderer's own version
    queue_raw(conn, "html", "telegram", "<b>Lunch</b> &lt;3", later=1.0)  # queued after its migrations ran
    conn.close()

    db = Database(tmp_path / "new.db")
    assert texts(db) == {"html": "<b>Lunch</b> &lt;3"}
    db.close()
