"""What every channel is doing, for `nanofolks status` and `nanofolks channels list`, read from another
process: the lock probe (on PostgreSQL, the live workers' locks) says whether a gateway runs it, the last
heartbeat and the inbox/outbox tables say the rest."""

from __future__ import annotations

import json
from typing import Any

from nanofolks.channels.base import ChannelError
from nanofolks.channels.registry import CHANNELS
from nanofolks.config.schema import Config
from nanofolks.gateway.locks import channel_lock_name, channel_lock_path, lock_holder
from nanofolks.store.channel_state import ChannelStateRepo
from nanofolks.store.db import Database
from nanofolks.store.fleet import is_postgres, live_workers
from nanofolks.store.inbox import InboxRepo
from nanofolks.store.outbox import STATES as OUTBOX_STATES
from nanofolks.store.outbox import OutboxRepo
from nanofolks.store.rejected import RejectedRepo

INBOX_STATES = ("pending", "done", "denied")


def worker_report(db: Database) -> list[dict[str, Any]] | None:
    """The live workers of a fleet (PostgreSQL), with the locks each holds; None on SQLite (one gateway)."""
    if not is_postgres(db):
        return None
    return [{"id": w.id, "host": w.host, "pid": w.pid, "started": w.started_at, "last_seen": w.seen_at,
             "holds": w.holds} for w in live_workers(db)]


def channel_report(config: Config, db: Database, workers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every platform, whether configured or not. Running is the lock probe (the lock dies with its
    gateway, even by kill -9); in a fleet, `workers` (worker_report) says who holds the bot's lock."""
    beats = {key: json.loads(keys["status"][0]) for key, keys in ChannelStateRepo(db).all().items()
             if "status" in keys}
    inbox, outbox, rejected = InboxRepo(db).counts(), OutboxRepo(db).counts(), RejectedRepo(db).counts()
    rows = []
    for platform, spec in CHANNELS.items():
        conf = spec.section(config)
        try:
            spec.build(config)
            problem = ""
        except ChannelError as exc:
            problem = str(exc)
        if workers is None:
            holder, pid = None, lock_holder(channel_lock_path(spec, config))
        else:
            holder = _holder(workers, channel_lock_name(spec, config))
            pid = holder["pid"] if holder else None
        account, beat = max(((a, b) for (p, a), b in beats.items() if p == platform),
                            key=lambda ab: ab[1].get("at", 0), default=("", {}))
        if pid is None:
            state = "stopped"
        else:  # a heartbeat written by another process is an older run's: this one is still starting
            state = beat.get("state", "starting") if beat.get("pid") == pid else "starting"
        rows.append({
            "channel": platform, "enabled": conf.enabled, "configured": not problem, "problem": problem,
            "allowFrom": len(conf.allow_from), "state": state, "pid": pid, "account": account,
            "username": beat.get("username", ""), "last_heartbeat": beat.get("at"),
            "inbox": _totals(inbox, platform, INBOX_STATES), "outbox": _totals(outbox, platform, OUTBOX_STATES),
            "rejected": rejected.get(platform, 0),  # updates that could not be read: recorded, confirmed, skipped
            **({"worker": holder["id"] if holder else None} if workers is not None else {}),
        })
    return rows


def _holder(workers: list[dict[str, Any]], lock: str) -> dict[str, Any] | None:
    return next((w for w in workers if any(h["lock"] == lock for h in w["holds"])), None)


def _totals(counts: dict[tuple[str, str], dict[str, int]], platform: str, states: tuple[str, ...]) -> dict[str, int]:
    """One platform's rows by state, over all its accounts (an old account's pending rows still count)."""
    return {state: sum(c.get(state, 0) for (p, _), c in counts.items() if p == platform) for state in states}
