"""Replies waiting to be sent: the gateway's durable egress.

Each row is one platform message (a reply already split to the platform's limit) with an idempotency
key, so a turn's replies are queued once however often it is retried. States:

    pending --claim--> sending --delivered--> delivered
                          |----retry-------> pending (next_attempt_at later)
                          |----maybe sent--> uncertain (never resent automatically)
                          '----refused-----> failed

A row found in `sending` at start was in flight when the process died: it may have been delivered,
so it becomes `uncertain` rather than being sent a second time."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from nanofolks.secrets.sanitize import sanitize
from nanofolks.store.db import Database

STATES = ("pending", "sending", "delivered", "uncertain", "failed")


@dataclass
class OutboxRow:
    key: str
    platform: str
    account: str
    chat_id: str
    text: str
    reply_to: str | None = None
    inbox_id: int | None = None
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    platform_message_id: str | None = None
    error: str = ""
    id: int | None = None
    created_at: float = 0.0


def insert_rows(conn: sqlite3.Connection, rows: Iterable[OutboxRow]) -> None:
    """Queue rows inside the caller's transaction; a key queued before is left as it is."""
    now = time.time()
    conn.executemany(
        "INSERT INTO outbox (key, inbox_id, platform, account, chat_id, reply_to, text, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(r.key, r.inbox_id, r.platform, r.account, r.chat_id, r.reply_to, sanitize(r.text), now, now) for r in rows],
    )


class OutboxRepo:
    def __init__(self, db: Database):
        self.db = db

    def enqueue(self, rows: Iterable[OutboxRow]) -> None:
        with self.db.write() as conn:
            insert_rows(conn, rows)

    def next_pending(self, platform: str, account: str) -> OutboxRow | None:
        """The oldest unsent row of an account: replies leave in the order they were queued."""
        row = self.db.query_one(
            "SELECT * FROM outbox WHERE platform = ? AND account = ? AND status = 'pending' ORDER BY id LIMIT 1",
            (platform, account),
        )
        return _row(row) if row else None

    def get(self, key: str) -> OutboxRow | None:
        row = self.db.query_one("SELECT * FROM outbox WHERE key = ?", (key,))
        return _row(row) if row else None

    def claim(self, row_id: int) -> bool:
        """pending -> sending, just before the request goes out."""
        return self._move(row_id, ("pending",), "sending", "attempts = attempts + 1")

    def delivered(self, row_id: int, platform_message_id: str) -> bool:
        return self._move(row_id, ("sending",), "delivered", "platform_message_id = ?", (platform_message_id,))

    def retry_later(self, row_id: int, error: str, at: float) -> bool:
        return self._move(row_id, ("sending",), "pending", "error = ?, next_attempt_at = ?", (error[:500], at))

    def uncertain(self, row_id: int, error: str) -> bool:
        return self._move(row_id, ("sending",), "uncertain", "error = ?", (error[:500],))

    def failed(self, row_id: int, error: str) -> bool:
        return self._move(row_id, ("pending", "sending"), "failed", "error = ?", (error[:500],))

    def recover(self, platform: str, account: str) -> int:
        """At start: rows left `sending` by a crash may have been delivered; mark them uncertain."""
        with self.db.write() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'uncertain', error = 'in flight when the gateway stopped',"
                " updated_at = ? WHERE platform = ? AND account = ? AND status = 'sending'",
                (time.time(), platform, account),
            )
            return cur.rowcount

    def sent_to(self, platform: str, chat_id: str, after_id: int = 0, since: float = 0.0,
                until: float | None = None, limit: int = 200) -> list[OutboxRow]:
        """What was queued for one chat, oldest first (a page showing the chat as its person sees it)."""
        before = "" if until is None else " AND created_at < ?"
        rows = self.db.query(
            f"SELECT * FROM outbox WHERE platform = ? AND chat_id = ? AND id > ? AND created_at >= ?{before}"
            " ORDER BY id LIMIT ?", (platform, chat_id, after_id, since, *([] if until is None else [until]), limit))
        return [_row(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """{(platform, account): {status: count}} for `nanofolks status`."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for r in self.db.query("SELECT platform, account, status, COUNT(*) n FROM outbox GROUP BY 1, 2, 3"):
            out.setdefault((r["platform"], r["account"]), {})[r["status"]] = r["n"]
        return out

    def _move(self, row_id: int, sources: tuple[str, ...], target: str, assign: str = "",
              params: tuple = ()) -> bool:
        """One state transition, only from the states allowed: False when the row was elsewhere."""
        marks = ",".join("?" * len(sources))
        sets = f"status = ?, updated_at = ?{', ' + assign if assign else ''}"
        with self.db.write() as conn:
            cur = conn.execute(
                f"UPDATE outbox SET {sets} WHERE id = ? AND status IN ({marks})",
                (target, time.time(), *params, row_id, *sources),
            )
            return cur.rowcount == 1


def _row(r) -> OutboxRow:  # noqa: ANN001 - sqlite3.Row
    return OutboxRow(
        id=r["id"], key=r["key"], inbox_id=r["inbox_id"], platform=r["platform"], account=r["account"],
        chat_id=r["chat_id"], reply_to=r["reply_to"], text=r["text"], status=r["status"], attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"], platform_message_id=r["platform_message_id"], error=r["error"],
        created_at=r["created_at"],
    )
