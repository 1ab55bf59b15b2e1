"""Skill approvals: a decision (approved or rejected) pinned to the content hash it was made for."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nanofolks.store.db import Database


@dataclass
class Decision:
    name: str
    content_hash: str
    decision: str  # approved | rejected
    risk: str
    decided_at: float


class SkillApprovals:
    def __init__(self, db: Database):
        self.db = db

    def decide(self, name: str, content_hash: str, decision: str, risk: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO skill_approvals (name, content_hash, decision, risk, decided_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET content_hash = excluded.content_hash,"
                " decision = excluded.decision, risk = excluded.risk, decided_at = excluded.decided_at",
                (name, content_hash, decision, risk, time.time()),
            )

    def all(self) -> dict[str, Decision]:
        rows = self.db.query("SELECT name, content_hash, decision, risk, decided_at FROM skill_approvals")
        return {r["name"]: Decision(r["name"], r["content_hash"], r["decision"], r["risk"], r["decided_at"])
                for r in rows}
