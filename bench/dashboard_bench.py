"""What the dashboard's live pages cost the database, on a home with a long history.

    python bench/dashboard_bench.py --json [--messages 200000] [--rounds 50]

Measured on a temporary database with --messages chat messages (a tool call and result for every tenth, and a
work log entry each) over four rooms:
- timeline_page_ms: p50 of the Activity page's newest 100 items (store/activity.py: each source read newest
  first from its primary key, then merged);
- timeline_poll_ms: p50 of a live page's look for what is new since its cursor (nothing new: the common case);
- timeline_room_ms: the page filtered to one room and one bot;
- scan_page_ms: the same 100 items from one union of the three tables sorted whole (the query the timeline
  would be without reading each source from its key), as a baseline;
- ratio_p50: timeline_page / scan_page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile, report  # noqa: E402
from nanofolks.store.activity import ActivityRepo, Cursor  # noqa: E402
from nanofolks.store.db import Database  # noqa: E402
from nanofolks.store.rooms import RoomRepo  # noqa: E402

SCAN = """
SELECT t.*, COALESCE(r.name, '') AS room FROM (
    SELECT 'm' AS source, id, created_at AS at, 'message' AS kind, room_id,
           CASE WHEN role = 'user' THEN sender ELSE author END AS who, substr(content, 1, 300) AS summary, 1 AS ok
      FROM messages WHERE kind = 'chat'
    UNION ALL SELECT 'w', id, created_at, kind, room_id, bot, summary, ok FROM worklog
    UNION ALL SELECT 'a', id, at, kind, room_id, bot, summary, ok FROM activity
) t LEFT JOIN rooms r ON r.id = t.room_id ORDER BY t.at DESC, t.id DESC LIMIT 100
"""


def fill(db: Database, messages: int) -> None:
    now = time.time() - messages
    rooms = [RoomRepo(db).create(f"room{n}", "project", ["leader"]).id for n in range(4)]
    with db.write() as conn:
        rows, work = [], []
        for n in range(messages):
            room, at = rooms[n % 4], now + n
            role, author = ("user", "user") if n % 2 == 0 else ("assistant", "leader")
            rows.append((room, author, role, "chat", f"message {n} about the voyage north", "alice", at))
            if n % 10 == 0:
                rows.append((room, "coder", "assistant", "tool_call", '{"tool": "exec"}', "", at))
                rows.append((room, "coder", "tool", "tool_result", "ok", "", at))
            work.append((room, "coder", "tool", f"exec ls {n}", at))
        conn.executemany("INSERT INTO messages (room_id, author, role, kind, content, platform, sender, turn_id, meta,"
                         " created_at) VALUES (?, ?, ?, ?, ?, 'cli', ?, '', '{}', ?)", rows)
        conn.executemany("INSERT INTO worklog (room_id, bot, kind, summary, created_at) VALUES (?, ?, ?, ?, ?)", work)
        conn.execute("INSERT INTO activity (at, kind, summary) VALUES (?, 'consolidation', 'memory consolidated')",
                     (now + messages,))


def timed(fn, rounds: int) -> float:  # noqa: ANN001 - any callable
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return percentile(samples, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "nanofolks.db")
        fill(db, args.messages)
        repo = ActivityRepo(db)
        newest = repo.timeline()
        assert [(i.source, i.id) for i in newest] == [(r["source"], r["id"]) for r in db.query(SCAN)]  # same answer
        cursor = Cursor().past(newest)
        page = timed(repo.timeline, args.rounds)
        poll = timed(lambda: repo.timeline(after=cursor), args.rounds)
        room = timed(lambda: repo.timeline(room_id=2, who="leader"), args.rounds)
        scan = timed(lambda: db.query(SCAN), max(3, args.rounds // 10))
        db.close()
    report({"bench": "dashboard_timeline", "messages": args.messages, "timeline_page_ms": round(page, 3),
            "timeline_poll_ms": round(poll, 3), "timeline_room_ms": round(room, 3), "scan_page_ms": round(scan, 2),
            "ratio_p50": round(page / scan, 4)}, args.json)


if __name__ == "__main__":
    main()
