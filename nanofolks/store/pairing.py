"""Pairing: codes handed to strangers, and the senders the owner approved (on top of allowFrom)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from nanofolks.store.db import Database


@dataclass
class PairingRequest:
    platform: str
    code: str
    user_id: str
    username: str
    chat_id: str
    status: str
    created_at: float
    expires_at: float


@dataclass
class AllowedSender:
    platform: str
    user_id: str
    username: str
    approved_at: float


class PairingRepo:
    def __init__(self, db: Database):
        self.db = db

    def request(
        self, platform: str, user_id: str, username: str, chat_id: str, *, make_code: Callable[[], str],
        ttl: float, max_pending: int, now: float | None = None,
    ) -> PairingRequest | None:
        """The sender's live pending request (the same code again), or a new one; None when the
        channel already has `max_pending` live requests."""
        now = time.time() if now is None else now
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT * FROM pairing_requests WHERE platform = ? AND user_id = ? AND status = 'pending'"
                " AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                (platform, user_id, now),
            ).fetchone()
            if row:
                return _request(row)
            live = conn.execute(
                "SELECT COUNT(*) FROM pairing_requests WHERE platform = ? AND status = 'pending' AND expires_at > ?",
                (platform, now),
            ).fetchone()[0]
            if live >= max_pending:
                return None
            for _ in range(10):  # a code collision is astronomically rare; try another
                code = make_code()
                try:
                    conn.execute(
                        "INSERT INTO pairing_requests (platform, code, user_id, username, chat_id, created_at,"
                        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (platform, code, user_id, username, chat_id, now, now + ttl),
                    )
                except sqlite3.IntegrityError:
                    continue
                return PairingRequest(platform, code, user_id, username, chat_id, "pending", now, now + ttl)
        raise RuntimeError("could not find a free pairing code")

    def approve(self, platform: str, code: str, now: float | None = None) -> PairingRequest | None:
        """Approve a live pending code: its sender becomes allowed. None when no such live code."""
        now = time.time() if now is None else now
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT * FROM pairing_requests WHERE platform = ? AND code = ? AND status = 'pending'"
                " AND expires_at > ?",
                (platform, code, now),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE pairing_requests SET status = 'approved' WHERE platform = ? AND code = ?",
                         (platform, code))
            conn.execute(
                "INSERT INTO allowed_senders (platform, user_id, username, approved_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (platform, user_id) DO UPDATE SET username = excluded.username",
                (platform, row["user_id"], row["username"], now),
            )
        return _request(row)

    def reject(self, platform: str, code: str) -> bool:
        with self.db.write() as conn:
            cur = conn.execute(
                "UPDATE pairing_requests SET status = 'rejected' WHERE platform = ? AND code = ? AND status = 'pending'",
                (platform, code),
            )
            return cur.rowcount > 0

    def revoke(self, platform: str, user: str) -> bool:
        """Withdraw an approval, by user id or username."""
        with self.db.write() as conn:
            cur = conn.execute(
                "DELETE FROM allowed_senders WHERE platform = ? AND (user_id = ? OR lower(username) = lower(?))",
                (platform, user, user.lstrip("@")),
            )
            return cur.rowcount > 0

    def is_approved(self, platform: str, user_id: str) -> bool:
        row = self.db.query_one(
            "SELECT 1 FROM allowed_senders WHERE platform = ? AND user_id = ?", (platform, user_id)
        )
        return row is not None

    def pending(self, now: float | None = None) -> list[PairingRequest]:
        now = time.time() if now is None else now
        rows = self.db.query(
            "SELECT * FROM pairing_requests WHERE status = 'pending' AND expires_at > ? ORDER BY created_at", (now,)
        )
        return [_request(r) for r in rows]

    def allowed(self) -> list[AllowedSender]:
        rows = self.db.query("SELECT * FROM allowed_senders ORDER BY platform, approved_at")
        return [AllowedSender(r["platform"], r["user_id"], r["username"], r["approved_at"]) for r in rows]


def _request(r) -> PairingRequest:  # noqa: ANN001 - sqlite3.Row
    return PairingRequest(r["platform"], r["code"], r["user_id"], r["username"], r["chat_id"], r["status"],
                          r["created_at"], r["expires_at"])
