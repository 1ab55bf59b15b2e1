"""Signing in to the dashboard, secure by default:

- `nanofolks dashboard` issues a one-time login link (a random token; only its hash is stored, it expires
  after `dashboard.loginMinutes` and works once);
- the link starts a session: a random id in an HttpOnly, SameSite=Strict cookie, its hash in the database,
  with its own CSRF token that every state-changing request carries in a header or form field;
- `dashboard token rotate` drops every link and session: all browsers are signed out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from nanofolks.store.dashboard import DashboardAuthRepo

COOKIE = "nanofolks_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


@dataclass
class Session:
    id: str  # the cookie's value (only its hash is stored)
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    def __init__(self, repo: DashboardAuthRepo, login_minutes: float, session_hours: float):
        self.repo = repo
        self.login_seconds = login_minutes * 60
        self.session_seconds = session_hours * 3600

    def issue_login(self, now: float | None = None) -> str:
        """A fresh one-time login token (to put in the printed link)."""
        token = secrets.token_urlsafe(32)
        self.repo.add_login(_hash(token), (now or time.time()) + self.login_seconds)
        return token

    def sign_in(self, token: str, now: float | None = None) -> Session | None:
        """Spend a login token for a new session; None when the token is unknown, used or expired."""
        now = now or time.time()
        if not token or not self.repo.use_login(_hash(token), now):
            return None
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24))
        self.repo.add_session(_hash(session.id), session.csrf, now, now + self.session_seconds)
        return session

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        if not cookie:
            return None
        csrf = self.repo.session_csrf(_hash(cookie), now or time.time())
        return None if csrf is None else Session(cookie, csrf)

    def sign_out(self, session: Session) -> None:
        self.repo.end_session(_hash(session.id))

    def rotate(self) -> tuple[str, int]:
        """Every link and session dropped; a new login token, and how many browsers were signed out."""
        signed_out = self.repo.clear()
        return self.issue_login(), signed_out


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())


def origin_ok(origin: str | None, host: str) -> bool:
    """A state-changing request must come from one of our own pages: browsers send Origin with every POST,
    so a missing one is refused too. The scheme is not compared: behind a TLS proxy the page is https while
    the request reaching us is http (the proxy must pass the Host header on)."""
    if not origin:
        return False
    return urlsplit(origin).netloc == host
