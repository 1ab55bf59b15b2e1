"""Pairing: codes handed to strangers, and the senders the owner approved (on top of allowFrom)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nanofolks.store.db import Database


class PairingRefused(Exception):
    """No code for this sender now (asked again too soon, or too often); the message is ignored."""


@dataclass
class PairingLimits:
    max_pending: int  # live codes per channel; the oldest is dropped for a new one
    codes_per_hour: int  # new codes one sender may get in an hour
    repeat_after: float  # seconds before a sender who writes again is sent their code again


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
        ttl: float, limits: PairingLimits, now: float | None = None,
    ) -> PairingRequest:
        """The code to send this sender: their live one again, or a new one. A full channel drops its
        oldest live code (strangers holding codes never lock a new person out); PairingRefused when this
        sender was answered moments ago or asked for too many codes this hour."""
        now = time.time() if now is None else now
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT * FROM pairing_requests WHERE platform = ? AND user_id = ? AND status = 'pending'"
                " AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                (platform, user_id, now),
            ).fetchone()
            if row:
                if now - row["answered_at"] < limits.repeat_after:
                    raise PairingRefused(f"sender {user_id} was sent their code less than "
                                         f"{limits.repeat_after:.0f}s ago")
                conn.execute("UPDATE pairing_requests SET answered_at = ? WHERE platform = ? AND code = ?",
                             (now, platform, row["code"]))
                return _request(row)
            made = conn.execute(
                "SELECT COUNT(*) FROM pairing_requests WHERE platform = ? AND user_id = ? AND created_at > ?",
                (platform, user_id, now - 3600),
            ).fetchone()[0]
            if made >= limits.codes_per_hour:
                raise PairingRefused(f"sender {user_id} asked for {made} pairing codes within the hour")
            conn.execute(  # full: the oldest live codes make room
                "UPDATE pairing_requests SET status = 'rejected' WHERE platform = ? AND code IN (SELECT code FROM"
                " (SELECT code, ROW_NUMBER() OVER (ORDER BY created_at DESC) AS n FROM pairing_requests"
                " WHERE platform = ? AND status = 'pending' AND expires_at > ?) AS live WHERE n >= ?)",
                (platform, platform, now, limits.max_pending),
            )
            for _ in range(10):  # a code collision is astronomically rare; try another
                code = make_code()
                if conn.execute(
                    "INSERT INTO pairing_requests (platform, code, user_id, username, chat_id, created_at,"
                    " expires_at, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (platform, code, user_id, username, chat_id, now, now + ttl, now),
                ).rowcount:
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
