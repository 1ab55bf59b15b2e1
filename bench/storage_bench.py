"""The same repository calls on SQLite and on PostgreSQL: per-call latency, and PostgreSQL's as a ratio of SQLite's.

    python bench/storage_bench.py --json [--postgres postgresql://postgres@127.0.0.1:5432/test] [--calls 300]

Both stores are filled alike first (--history messages in two rooms), then each operation runs --calls times
on each, alternating between the stores so that both see the same machine load. The operations are those of
a gateway reply: record the incoming message (inbox), find its room, take and release the room's lease, read
the recent history, commit the turn (the reply, the inbox row marked done, its outbox row: one transaction),
claim and deliver the outbox row; and a memory keyword search over the history. Calls are made directly on
this thread (the gateway makes them through `db.quick`/`db.run`). PostgreSQL runs in a schema of its own,
dropped at the end; without --postgres (or NANOFOLKS_TEST_POSTGRES) only SQLite is measured."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile, report  # noqa: E402
from nanofolks.memory.search import fts_query  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402
from nanofolks.store.inbox import InboxRepo, InboxRow, mark_done  # noqa: E402
from nanofolks.store.leases import RoomLeases  # noqa: E402
from nanofolks.store.memory import Filters, SearchRepo  # noqa: E402
from nanofolks.store.messages import Message, MessageRepo  # noqa: E402
from nanofolks.store.outbox import OutboxRepo, OutboxRow  # noqa: E402
from nanofolks.store.rooms import RoomRepo  # noqa: E402

WORDS = ["atlas", "backup", "server", "disk", "invoice", "march", "deploy", "friday", "lunch", "plan", "meeting", "budget"]


class Workload:
    """One store, filled, with the operations to time."""

    def __init__(self, db: Any, history: int):
        self.db = db
        self.rooms, self.messages = RoomRepo(db), MessageRepo(db)
        self.inbox, self.outbox, self.leases = InboxRepo(db), OutboxRepo(db), RoomLeases(db)
        self.search = SearchRepo(db)
        self.room = self.rooms.create("general", "open", ["leader", "coder"])
        self.rooms.map_chat("telegram", "42", self.room.id)
        other = self.rooms.create("ops", "project", ["coder"])
        self.messages.add_many([Message(self.room.id if n % 2 else other.id, "user", "user",
                                        " ".join(WORDS[(n * 7 + k) % len(WORDS)] for k in range(12)) + f" #{n}")
                                for n in range(history)])
        self.counter = itertools.count()
        self.pending: list[int] = []

    def operations(self) -> dict[str, Callable[[], object]]:
        return {"inbox_add": self.inbox_add, "room_for_chat": lambda: self.rooms.room_for_chat("telegram", "42"),
                "lease_take_release": self.lease, "recent_30": lambda: self.messages.recent(self.room.id, 30),
                "turn_commit": self.turn_commit, "outbox_claim_deliver": self.send,
                "keyword_search": lambda: self.search.fts_messages(fts_query("atlas disk budget"), 10, Filters())}

    def inbox_add(self) -> None:
        n = next(self.counter)
        inbox_id = self.inbox.add(InboxRow("telegram", "bot", "42", f"m{n}", f"hello {n}"))
        self.pending.append(inbox_id or 0)

    def lease(self) -> None:
        self.leases.take(self.room.id, "bench:1:x")
        self.leases.release(self.room.id, "bench:1:x")

    def turn_commit(self) -> None:
        inbox_id = self.pending.pop()
        reply = OutboxRow(key=f"inbox:{inbox_id}:0", platform="telegram", account="bot", chat_id="42", text="hi")
        self.messages.add_many([Message(self.room.id, "leader", "assistant", "an answer")],
                               then=lambda conn: mark_done(conn, inbox_id, [reply]))

    def send(self) -> None:
        row = self.outbox.next_pending("telegram", "bot")
        if row and row.id and self.outbox.claim(row.id):
            self.outbox.delivered(row.id, "1")


def measure(stores: dict[str, Workload], calls: int) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    names = list(next(iter(stores.values())).operations())
    for op in names:  # inbox_add before turn_commit: each commit answers one message added
        for _ in range(calls):
            for name, store in stores.items():
                fn = store.operations()[op]
                start = time.perf_counter()
                fn()
                samples[name].setdefault(op, []).append((time.perf_counter() - start) * 1e6)
    out: dict[str, dict[str, Any]] = {}
    for op in names:
        row: dict[str, Any] = {}
        for name in stores:
            values = samples[name][op]
            row[name] = {"p50_us": round(percentile(values, 0.5), 1), "p99_us": round(percentile(values, 0.99), 1)}
        if "postgres" in row:
            row["ratio_p50"] = round(row["postgres"]["p50_us"] / row["sqlite"]["p50_us"], 2)
        out[op] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("NANOFOLKS_TEST_POSTGRES", ""))
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--history", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"sqlite": Workload(Database(Path(tmp) / "bench.db"), args.history)}
        schema, admin = "", None
        if args.postgres:
            import psycopg

            from nanofolks.store.postgres import PgDatabase

            schema = f"bench_{uuid.uuid4().hex[:12]}"
            admin = psycopg.connect(args.postgres, autocommit=True)
            admin.execute(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in args.postgres else "?"
            stores["postgres"] = Workload(PgDatabase(f"{args.postgres}{sep}options=-csearch_path%3D{schema}"),
                                          args.history)
        try:
            result = {"calls": args.calls, "history": args.history, "operations": measure(stores, args.calls)}
            if not args.postgres:
                result["postgres"] = "not measured: pass --postgres URL or set NANOFOLKS_TEST_POSTGRES"
            report(result, args.json)
        finally:
            for store in stores.values():
                store.db.close()
            if admin is not None:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
                admin.close()


if __name__ == "__main__":
    main()
