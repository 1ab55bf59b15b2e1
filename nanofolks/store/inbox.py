"""Inbound platform messages, written before the platform is acknowledged: the gateway's durable ingress.

A row is unique on (platform, account, chat, message id), so a redelivered update is recognised. A row
stays `pending` until its turn has produced its outbox rows (in the same transaction), so a crash
before that re-runs the turn on the next start and a crash after it never does."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nanofolks.secrets.sanitize import sanitize
from nanofolks.store.db import Database
from nanofolks.store.outbox import OutboxRow, insert_rows


@dataclass
class InboxRow:
    platform: str
    account: str
    chat_id: str
    message_id: str
    text: str
    chat_type: str = "private"
    sender_id: str = ""
    sender_name: str = ""
    status: str = "pending"  # pending | done | denied (a stranger's message: kept for dedupe, text dropped)
    received_at: float = 0.0
    id: int | None = None


class InboxRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, row: InboxRow, replies: Sequence[OutboxRow] = ()) -> int | None:
        """Record a message; None when this exact message was recorded before (a redelivery).
        `replies` (answers that need no turn, e.g. a pairing code) are queued in the same transaction."""
        row.received_at = row.received_at or time.time()
        row.text = sanitize(row.text)  # the last line; the ingress has already kept what it found in the vault
        with self.db.write() as conn:
            added = conn.execute(
                "INSERT INTO inbox (platform, account, chat_id, message_id, chat_type, sender_id, sender_name, text,"
                " status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (row.platform, row.account, row.chat_id, row.message_id, row.chat_type, row.sender_id,
                 row.sender_name, row.text, row.status, row.received_at),
            ).fetchone()
            if added is None:
                return None
            row.id = added[0]
            insert_rows(conn, [_with_inbox(r, row.id) for r in replies])
        return row.id

    def get(self, inbox_id: int) -> InboxRow | None:
        row = self.db.query_one("SELECT * FROM inbox WHERE id = ?", (inbox_id,))
        return _row(row) if row else None

    def pending(self, platform: str, account: str) -> list[InboxRow]:
        rows = self.db.query(
            "SELECT * FROM inbox WHERE platform = ? AND account = ? AND status = 'pending' ORDER BY id",
            (platform, account),
        )
        return [_row(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """{(platform, account): {status: count}} for `nanofolks status`."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for r in self.db.query("SELECT platform, account, status, COUNT(*) n FROM inbox GROUP BY 1, 2, 3"):
            out.setdefault((r["platform"], r["account"]), {})[r["status"]] = r["n"]
        return out


    def queue_while_pending(self, inbox_id: int, rows: Sequence[OutboxRow]) -> bool:
        """Queue rows (a "still working" notice) only while the inbox row is unanswered, so that they never
        follow its answer; False when it was answered already."""
        with self.db.write() as conn:
            row = conn.execute("SELECT status FROM inbox WHERE id = ?", (inbox_id,)).fetchone()
            if row is None or row["status"] != "pending":
                return False
            insert_rows(conn, rows)
        return True


def mark_done(conn: sqlite3.Connection, inbox_id: int, replies: Sequence[OutboxRow]) -> bool:
    """Mark a turn answered and queue its replies, inside the caller's transaction (the gateway's: with the
    turn's stored replies). False if it was already done: then nothing is queued, the replies of a turn
    are written exactly once."""
    cur = conn.execute(
        "UPDATE inbox SET status = 'done', done_at = ? WHERE id = ? AND status = 'pending'", (time.time(), inbox_id)
    )
    if not cur.rowcount:
        return False
    insert_rows(conn, replies)
    return True


def _with_inbox(reply: OutboxRow, inbox_id: int | None) -> OutboxRow:
    reply.inbox_id = inbox_id
    return reply


def _row(r) -> InboxRow:  # noqa: ANN001 - sqlite3.Row
    return InboxRow(
        id=r["id"], platform=r["platform"], account=r["account"], chat_id=r["chat_id"], message_id=r["message_id"],
        text=r["text"], chat_type=r["chat_type"], sender_id=r["sender_id"], sender_name=r["sender_name"],
        status=r["status"], received_at=r["received_at"],
    )
