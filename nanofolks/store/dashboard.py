"""The dashboard's sign-in: one-time login links and signed-in browsers. Only SHA-256 hashes are stored: a
copy of the database opens no dashboard."""

from __future__ import annotations

from nanofolks.store.db import Database


class DashboardAuthRepo:
    def __init__(self, db: Database):
        self.db = db

    def add_login(self, token_hash: str, expires_at: float) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT INTO dashboard_logins (token_hash, expires_at) VALUES (?, ?)", (token_hash, expires_at))

    def use_login(self, token_hash: str, now: float) -> bool:
        """Spend a login link: True once, for a link not used before and not expired."""
        with self.db.write() as conn:
            cur = conn.execute("UPDATE dashboard_logins SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
                               " AND expires_at > ?", (now, token_hash, now))
            conn.execute("DELETE FROM dashboard_logins WHERE expires_at <= ?", (now,))  # expired links go
            return cur.rowcount == 1

    def add_session(self, id_hash: str, csrf: str, now: float, expires_at: float) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO dashboard_sessions (id_hash, csrf, created_at, expires_at) VALUES (?, ?, ?, ?)",
                         (id_hash, csrf, now, expires_at))

    def session_csrf(self, id_hash: str, now: float) -> str | None:
        """The CSRF token of a live session, None for an unknown or expired one."""
        row = self.db.query_one("SELECT csrf FROM dashboard_sessions WHERE id_hash = ? AND expires_at > ?",
                                (id_hash, now))
        return None if row is None else str(row[0])

    def end_session(self, id_hash: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE id_hash = ?", (id_hash,))

    def clear(self) -> int:
        """Every link and session gone (a token rotation); returns how many browsers were signed out."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM dashboard_logins")
            return conn.execute("DELETE FROM dashboard_sessions").rowcount
