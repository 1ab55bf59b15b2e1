"""Every SQL statement of the crew's memory: knowledge entries and their sources, full-text search over
entries and the event log (the `messages` table), vectors (the source of truth behind the HNSW file),
entities and relations, preferences, the archive of forgotten entries, large tool outputs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nanofolks.secrets.sanitize import sanitize
from nanofolks.store.db import Database

# Message kinds that are memories (tool calls are plumbing; their results are summarised in `content`).
EVENT_KINDS = ("chat", "consult", "tool_result")
LARGE_OUTPUT_BYTES = 10_000
FORGOTTEN = "-forgotten"  # the model name of a message's vector row once the user asked to forget it


@dataclass(frozen=True)
class Event:
    """One message of a room, as memory learns from it."""

    id: int
    room_id: int
    role: str  # user | assistant | system
    content: str
    sender: str  # the display name, a label
    created_at: float
    person: str = ""  # who wrote it, stably ("telegram:12345"); '' when unknown (no user message)


_EVENT_COLUMNS = "m.id, m.room_id, m.role, m.content, m.sender, m.created_at, m.person"


def _event(row: Any) -> Event:
    return Event(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6])


@dataclass
class Entry:
    text: str
    kind: str = "note"  # note | fact | decision | lesson | import | procedure | summary
    room_id: int | None = None
    bot: str = ""
    sender: str = ""
    importance: float = 0.5
    protected: bool = False
    origin: str = ""  # chat:remember | cli | import:FILE | consolidation | merge
    origin_key: str | None = None  # makes re-running the same extraction idempotent
    sources: list[int] = field(default_factory=list)  # message ids this was learnt from
    access_count: int = 0
    last_used: float | None = None
    marked_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    id: int | None = None


@dataclass
class Item:
    """One search hit, from an entry or a message, with what a caller shows or filters on."""

    source: str  # entry | message
    id: int
    text: str
    kind: str
    room_id: int | None
    room: str
    author: str
    sender: str
    created_at: float
    importance: float = 0.5
    protected: bool = False


@dataclass
class Filters:
    room_id: int | None = None
    # The asking person's rooms: only what was said or learnt there, and crew-wide entries (no room: the
    # owner's notes and imports). None: everything (the owner, the terminal).
    rooms: tuple[int, ...] | None = None
    bot: str | None = None
    since: float | None = None
    until: float | None = None


class EntryRepo:
    def __init__(self, db: Database):
        self.db = db

    def add(self, entry: Entry) -> tuple[int, bool]:
        """Insert an entry with its sources; (id, created). An existing origin_key returns the old id."""
        return self.add_many([entry])[0]

    def add_many(self, entries: list[Entry]) -> list[tuple[int, bool]]:
        """Several entries in one transaction (imports)."""
        now = time.time()
        out = []
        with self.db.write() as conn:
            for entry in entries:
                if entry.origin_key:
                    row = conn.execute("SELECT id FROM memory_entries WHERE origin_key = ?",
                                       (entry.origin_key,)).fetchone()
                    if row:
                        out.append((int(row[0]), False))
                        continue
                out.append((_insert_entry(conn, entry, now), True))
        return out

    def known_keys(self, keys: list[str]) -> set[str]:
        """Which of these origin keys are stored already (an import's passages, before it starts)."""
        known: set[str] = set()
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self.db.query(f"SELECT origin_key FROM memory_entries WHERE origin_key IN ({','.join('?' * len(part))})",
                                 tuple(part))
            known.update(r[0] for r in rows)
        return known

    def get(self, entry_id: int) -> Entry | None:
        row = self.db.query_one("SELECT * FROM memory_entries WHERE id = ?", (entry_id,))
        return self._entry(row) if row else None

    def count(self) -> dict[str, int]:
        row = self.db.query_one(
            "SELECT COUNT(*), SUM(protected), COUNT(marked_at) FROM memory_entries")
        return {"entries": int(row[0] or 0), "protected": int(row[1] or 0), "marked": int(row[2] or 0)} if row else {}

    def touch(self, entry_ids: Iterable[int], now: float | None = None) -> None:
        """Record a use: a used entry is worth keeping, and a marked one is pardoned."""
        ids = list(entry_ids)
        if not ids:
            return
        with self.db.write() as conn:
            conn.executemany(
                "UPDATE memory_entries SET access_count = access_count + 1, last_used = ?, marked_at = NULL"
                " WHERE id = ?", [(now or time.time(), i) for i in ids])

    def delete(self, entry_id: int) -> bool:
        with self.db.write() as conn:
            return conn.execute("DELETE FROM memory_entries WHERE id = ?", (entry_id,)).rowcount > 0

    def sources(self, entry_id: int) -> list[int]:
        rows = self.db.query("SELECT message_id FROM memory_sources WHERE entry_id = ? ORDER BY message_id",
                             (entry_id,))
        return [int(r[0]) for r in rows]

    def normalised_texts(self) -> dict[str, int]:
        """Entry text, lowercased and squeezed -> id: exact duplicates are not stored twice."""
        return {" ".join(r[1].lower().split()): int(r[0]) for r in self.db.query("SELECT id, text FROM memory_entries")}

    # -- forgetting ---------------------------------------------------------------------------------------
    def mark_unused(self, unused_since: float, min_importance: float, now: float) -> int:
        """Stage 1: unprotected, low-importance entries unused (or never used) since `unused_since`."""
        with self.db.write() as conn:
            return conn.execute(
                "UPDATE memory_entries SET marked_at = ? WHERE marked_at IS NULL AND protected = 0"
                " AND importance < ? AND COALESCE(last_used, created_at) < ?",
                (now, min_importance, unused_since)).rowcount

    def marked(self, marked_before: float | None = None) -> list[Entry]:
        sql = "SELECT * FROM memory_entries WHERE marked_at IS NOT NULL AND protected = 0"
        params: tuple = ()
        if marked_before is not None:
            sql += " AND marked_at < ?"
            params = (marked_before,)
        return [self._entry(r) for r in self.db.query(sql + " ORDER BY id", params)]

    def unprotected_ids(self) -> list[int]:
        return [int(r[0]) for r in self.db.query("SELECT id FROM memory_entries WHERE protected = 0 ORDER BY id")]

    def merge_into(self, keep_id: int, gone: Entry, reason: str, now: float) -> None:
        """Fold `gone` into `keep_id` (sources, uses, importance), then archive `gone`: one transaction."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO memory_sources (entry_id, message_id)"
                " SELECT ?, message_id FROM memory_sources WHERE entry_id = ? ON CONFLICT DO NOTHING", (keep_id, gone.id))
            conn.execute(
                "UPDATE memory_entries SET access_count = access_count + ?,"
                f" importance = {self.db.dialect.greatest('importance', '?')}, updated_at = ? WHERE id = ?",
                (gone.access_count, gone.importance, now, keep_id))
            _archive(conn, gone, self._sources(conn, gone.id), reason, now)

    def archive(self, entry: Entry, reason: str, now: float) -> None:
        with self.db.write() as conn:
            _archive(conn, entry, self._sources(conn, entry.id), reason, now)

    @staticmethod
    def _sources(conn: Any, entry_id: int | None) -> list[int]:
        return [int(r[0]) for r in conn.execute("SELECT message_id FROM memory_sources WHERE entry_id = ?",
                                                (entry_id,))]

    @staticmethod
    def _entry(row: Any) -> Entry:
        return Entry(
            id=row["id"], kind=row["kind"], text=row["text"], room_id=row["room_id"], bot=row["bot"],
            sender=row["sender"], importance=row["importance"], protected=bool(row["protected"]),
            access_count=row["access_count"], last_used=row["last_used"], marked_at=row["marked_at"],
            origin=row["origin"], origin_key=row["origin_key"], created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _archive(conn: Any, entry: Entry, sources: list[int], reason: str, now: float) -> None:
    data = {k: v for k, v in entry.__dict__.items() if k not in ("id", "sources")}
    data["sources"] = sources
    conn.execute("INSERT INTO memory_archive (entry_id, data, reason, archived_at) VALUES (?, ?, ?, ?)",
                 (entry.id, json.dumps(data), reason, now))
    conn.execute("DELETE FROM memory_entries WHERE id = ?", (entry.id,))


def _insert_entry(conn: sqlite3.Connection, entry: Entry, now: float) -> int:
    """Inside a write transaction: insert the entry and its sources; sets and returns its id."""
    entry.created_at = entry.created_at or now
    entry.updated_at = entry.updated_at or entry.created_at
    entry.text = sanitize(entry.text)  # the last line: an imported file's secrets are not kept
    entry.id = int(conn.execute(
        "INSERT INTO memory_entries (kind, text, room_id, bot, sender, importance, protected,"
        " access_count, last_used, marked_at, origin, origin_key, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (entry.kind, entry.text, entry.room_id, entry.bot, entry.sender, entry.importance,
         int(entry.protected), entry.access_count, entry.last_used, entry.marked_at, entry.origin,
         entry.origin_key, entry.created_at, entry.updated_at),
    ).fetchone()[0])
    conn.executemany("INSERT INTO memory_sources (entry_id, message_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     [(entry.id, m) for m in entry.sources])
    return entry.id


class ArchiveRepo:
    def __init__(self, db: Database):
        self.db = db

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM memory_archive ORDER BY id DESC LIMIT ?", (limit,))
        return [{"id": r["id"], "entry_id": r["entry_id"], "reason": r["reason"], "archived_at": r["archived_at"],
                 "text": json.loads(r["data"])["text"]} for r in rows]

    def restore(self, archive_id: int) -> Entry | None:
        """Bring an archived entry back as a new active entry (its vector is rebuilt by the indexer), in one
        transaction: a crash leaves it archived or restored, never lost."""
        now = time.time()
        with self.db.write() as conn:
            row = conn.execute("SELECT * FROM memory_archive WHERE id = ?", (archive_id,)).fetchone()
            if row is None:
                return None
            data = json.loads(row["data"])
            sources = data.pop("sources", [])
            data.update(marked_at=None, origin_key=None, last_used=now)
            entry = Entry(**data, sources=sources)
            conn.execute("DELETE FROM memory_archive WHERE id = ?", (archive_id,))
            _insert_entry(conn, entry, now)
        return entry

    def purge(self, older_than: float) -> int:
        with self.db.write() as conn:
            return conn.execute("DELETE FROM memory_archive WHERE archived_at < ?", (older_than,)).rowcount

    def count(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM memory_archive")
        return int(row[0]) if row else 0


# Not yet seen by the indexer (no vector row, not even a NULL one); the first takes EVENT_KINDS as parameters.
_PENDING_MESSAGE = (f"m.kind IN ({','.join('?' * len(EVENT_KINDS))}) AND NOT EXISTS"
                    " (SELECT 1 FROM memory_vectors v WHERE v.source = 'message' AND v.ref_id = m.id)")
_PENDING_ENTRY = "NOT EXISTS (SELECT 1 FROM memory_vectors v WHERE v.source = 'entry' AND v.ref_id = e.id)"


class VectorRepo:
    """Which entry or message each index label stands for, and its vector (so the index can always be
    rebuilt without re-embedding). A row with a NULL vector means 'seen, deliberately not indexed'."""

    def __init__(self, db: Database):
        self.db = db

    def pending_messages(self, after_id: int, limit: int) -> list[Event]:
        """Events after `after_id` not yet seen by the indexer, oldest first."""
        rows = self.db.query(f"SELECT {_EVENT_COLUMNS} FROM messages m WHERE m.id > ? AND {_PENDING_MESSAGE}"
                             " ORDER BY m.id LIMIT ?", (after_id, *EVENT_KINDS, limit))
        return [_event(r) for r in rows]

    def pending_entries(self, limit: int) -> list[tuple[int, str]]:
        rows = self.db.query(f"SELECT e.id, e.text FROM memory_entries e WHERE {_PENDING_ENTRY} ORDER BY e.id LIMIT ?",
                             (limit,))
        return [(int(r[0]), r[1]) for r in rows]

    def pending_count(self) -> int:
        """Events and entries the indexer has not seen yet, counted by SQLite."""
        row = self.db.query_one(f"SELECT (SELECT COUNT(*) FROM messages m WHERE {_PENDING_MESSAGE})"
                                f" + (SELECT COUNT(*) FROM memory_entries e WHERE {_PENDING_ENTRY})", EVENT_KINDS)
        return int(row[0]) if row else 0

    def put(self, rows: list[tuple[str, int, str, bytes | None]]) -> list[int]:
        """Store (source, ref_id, model, vector) rows; returns their labels (0 where a row already existed:
        two processes indexing the same event must not index it twice)."""
        labels = []
        now = time.time()
        with self.db.write() as conn:
            for source, ref_id, model, vector in rows:
                stored = conn.execute(
                    "INSERT INTO memory_vectors (source, ref_id, model, vector, created_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING RETURNING label", (source, ref_id, model, vector, now)).fetchone()
                labels.append(int(stored[0]) if stored else 0)
        return labels

    def iter_vectors(self, model: str, after_label: int = 0, batch: int = 5000) -> Iterator[list[tuple[int, bytes]]]:
        """(label, vector) of everything indexable, in label order, in batches."""
        last = after_label
        while True:
            rows = self.db.query(
                "SELECT label, vector FROM memory_vectors WHERE label > ? AND model = ? AND vector IS NOT NULL"
                " ORDER BY label LIMIT ?", (last, model, batch))
            if not rows:
                return
            yield [(int(r[0]), r[1]) for r in rows]
            last = int(rows[-1][0])

    def iter_vectors_for(self, model: str, labels: list[int], batch: int = 500) -> Iterator[list[tuple[int, bytes]]]:
        for start in range(0, len(labels), batch):
            chunk = labels[start:start + batch]
            marks = ",".join("?" * len(chunk))
            rows = self.db.query(f"SELECT label, vector FROM memory_vectors WHERE label IN ({marks}) AND model = ?"
                                 " AND vector IS NOT NULL ORDER BY label", (*chunk, model))
            if rows:
                yield [(int(r[0]), r[1]) for r in rows]

    def live_labels(self, model: str) -> set[int]:
        rows = self.db.query("SELECT label FROM memory_vectors WHERE model = ? AND vector IS NOT NULL", (model,))
        return {int(r[0]) for r in rows}

    def max_label(self) -> int:
        row = self.db.query_one("SELECT MAX(label) FROM memory_vectors")
        return int(row[0] or 0) if row else 0

    def vector_of(self, source: str, ref_id: int) -> tuple[int, bytes] | None:
        row = self.db.query_one("SELECT label, vector FROM memory_vectors WHERE source = ? AND ref_id = ?"
                                " AND vector IS NOT NULL", (source, ref_id))
        return (int(row[0]), row[1]) if row else None

    def refs(self, labels: list[int]) -> dict[int, tuple[str, int]]:
        if not labels:
            return {}
        marks = ",".join("?" * len(labels))
        # Only labels still holding a vector: another process may have dropped one this index still has.
        rows = self.db.query(f"SELECT label, source, ref_id FROM memory_vectors WHERE label IN ({marks})"
                             " AND vector IS NOT NULL", tuple(labels))
        return {int(r[0]): (r[1], int(r[2])) for r in rows}

    def counts(self) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT source, model, COUNT(*), COUNT(vector), SUM(LENGTH(vector)) FROM memory_vectors"
            " GROUP BY source, model")
        return {f"{r[0]}:{r[1]}": {"rows": r[2], "vectors": int(r[3] or 0), "bytes": int(r[4] or 0)} for r in rows}

    def forget_messages(self, older_than: float, keep: int) -> list[int]:
        """Take old message vectors out of the index (the messages stay in the room's history), and the
        oldest beyond `keep` vectors in total. Sources of protected entries stay. Returns the labels dropped."""
        candidates = (
            "SELECT v.label FROM memory_vectors v JOIN messages m ON m.id = v.ref_id"
            " WHERE v.source = 'message' AND v.vector IS NOT NULL {cond}"
            " AND NOT EXISTS (SELECT 1 FROM memory_sources s JOIN memory_entries e ON e.id = s.entry_id"
            "                 WHERE s.message_id = m.id AND e.protected = 1) ORDER BY v.label{limit}"
        )
        with self.db.write() as conn:
            labels = {int(r[0]) for r in conn.execute(candidates.format(cond="AND m.created_at < ?", limit=""),
                                                      (older_than,))}
            total = int(conn.execute("SELECT COUNT(*) FROM memory_vectors WHERE vector IS NOT NULL").fetchone()[0])
            excess = total - len(labels) - keep
            if excess > 0:
                labels |= {int(r[0]) for r in conn.execute(candidates.format(cond="AND m.created_at >= ?",
                                                                             limit=" LIMIT ?"),
                                                           (older_than, excess))}
        self.unindex(sorted(labels))
        return sorted(labels)

    def unindex(self, labels: list[int], forgotten: bool = False) -> None:
        """Keep the rows (so the indexer does not embed them again) but drop their vectors. A message
        `forgotten` on request is hidden from keyword search too (it stays in its room's history)."""
        with self.db.write() as conn:
            conn.executemany("UPDATE memory_vectors SET vector = NULL, model = CASE WHEN ? THEN ? ELSE model END"
                             " WHERE label = ?", [(forgotten, FORGOTTEN, x) for x in labels])

    def reset(self, model: str | None = None) -> int:
        """Drop vectors of another embedder (or all): the indexer embeds those items again."""
        with self.db.write() as conn:
            if model is None:
                return conn.execute("DELETE FROM memory_vectors").rowcount
            return conn.execute("DELETE FROM memory_vectors WHERE model != ?", (model,)).rowcount


class SearchRepo:
    """Full-text search (FTS5, bm25) and loading hits with their room, filtered."""

    def __init__(self, db: Database):
        self.db = db

    def fts_entries(self, match: str, limit: int, f: Filters, cjk: bool = False) -> list[tuple[int, float]]:
        """(id, score) best first; the score is negative, lower is better (bm25, or -ts_rank). `cjk`: the
        trigram index of texts in Japanese, Chinese or Korean (m021), matched with trigram phrases."""
        where, params = _filters(f, "e", "e.bot")
        hits = self.db.dialect.text_matches("memory_entries", cjk)
        rows = self.db.query(
            f"SELECT e.id, hit.score FROM ({hits}) AS hit JOIN memory_entries e ON e.id = hit.id"
            f" WHERE 1 = 1 {where} ORDER BY hit.score LIMIT ?",
            (match, *params, limit))
        return [(int(r[0]), float(r[1])) for r in rows]

    def fts_messages(self, match: str, limit: int, f: Filters, exclude: tuple[int, ...] = (),
                     cjk: bool = False) -> list[tuple[int, float]]:
        where, params = _filters(f, "m", "m.author")
        where += (" AND NOT EXISTS (SELECT 1 FROM memory_vectors v WHERE v.source = 'message'"
                  f" AND v.ref_id = m.id AND v.model = '{FORGOTTEN}')")
        marks = ",".join("?" * len(EVENT_KINDS))
        skip = f" AND m.id NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        hits = self.db.dialect.text_matches("messages", cjk)
        rows = self.db.query(
            f"SELECT m.id, hit.score FROM ({hits}) AS hit JOIN messages m ON m.id = hit.id"
            f" WHERE m.kind IN ({marks}) {where}{skip} ORDER BY hit.score LIMIT ?",
            (match, *EVENT_KINDS, *params, *exclude, limit))
        return [(int(r[0]), float(r[1])) for r in rows]

    def items(self, refs: list[tuple[str, int]], f: Filters | None = None) -> dict[tuple[str, int], Item]:
        """Load hits by (source, id); the ones that no longer exist or fail the filters are left out."""
        out: dict[tuple[str, int], Item] = {}
        f = f or Filters()
        for source in ("entry", "message"):
            ids = [i for s, i in refs if s == source]
            if not ids:
                continue
            marks = ",".join("?" * len(ids))
            if source == "entry":
                where, params = _filters(f, "e", "e.bot")
                rows = self.db.query(
                    "SELECT e.id, e.text, e.kind, e.room_id, COALESCE(r.name, '') AS room, e.bot AS author,"
                    " e.sender, e.created_at, e.importance, e.protected FROM memory_entries e"
                    f" LEFT JOIN rooms r ON r.id = e.room_id WHERE e.id IN ({marks}) {where}", (*ids, *params))
            else:
                where, params = _filters(f, "m", "m.author")
                rows = self.db.query(
                    "SELECT m.id, m.content AS text, m.kind, m.room_id, COALESCE(r.name, '') AS room, m.author,"
                    " m.sender, m.created_at, 0.5 AS importance, 0 AS protected FROM messages m"
                    f" LEFT JOIN rooms r ON r.id = m.room_id WHERE m.id IN ({marks}) {where}", (*ids, *params))
            for r in rows:
                out[(source, int(r["id"]))] = Item(
                    source=source, id=int(r["id"]), text=r["text"], kind=r["kind"], room_id=r["room_id"],
                    room=r["room"], author=r["author"], sender=r["sender"], created_at=r["created_at"],
                    importance=r["importance"], protected=bool(r["protected"]))
        return out

    def sources_of(self, entry_ids: list[int]) -> set[int]:
        if not entry_ids:
            return set()
        marks = ",".join("?" * len(entry_ids))
        rows = self.db.query(f"SELECT message_id FROM memory_sources WHERE entry_id IN ({marks})", tuple(entry_ids))
        return {int(r[0]) for r in rows}

    def recent_elsewhere(self, person: str, room_id: int, since: float, limit: int,
                         rooms: tuple[int, ...] | None = None) -> list[Item]:
        """What this person ("telegram:12345", never a display name: anyone can take any) said lately in
        the other rooms (this room's history is in the prompt already), within `rooms` when given."""
        where, params = _filters(Filters(rooms=rooms), "m", "m.author")
        rows = self.db.query(
            "SELECT m.id FROM messages m WHERE m.person = ? AND m.role = 'user' AND m.room_id != ?"
            f" AND m.kind = 'chat' AND m.created_at >= ? {where} ORDER BY m.id DESC LIMIT ?",
            (person, room_id, since, *params, limit))
        found = self.items([("message", int(r[0])) for r in rows])
        return [found[("message", int(r[0]))] for r in rows if ("message", int(r[0])) in found]

    def room_id(self, name: str) -> int | None:
        row = self.db.query_one("SELECT id FROM rooms WHERE name = ?", (name,))
        return int(row[0]) if row else None

    def recent_message_ids(self, room_id: int, limit: int) -> tuple[int, ...]:
        rows = self.db.query("SELECT id FROM messages WHERE room_id = ? ORDER BY id DESC LIMIT ?", (room_id, limit))
        return tuple(int(r[0]) for r in rows)

    def day_events(self, since: float, until: float) -> list[Event]:
        """The rooms' chat between two times, oldest first."""
        rows = self.db.query(
            f"SELECT {_EVENT_COLUMNS} FROM messages m WHERE m.created_at >= ?"
            " AND m.created_at < ? AND m.kind = 'chat' ORDER BY m.id", (since, until))
        return [_event(r) for r in rows]


def _filters(f: Filters, alias: str, bot_col: str) -> tuple[str, tuple]:
    parts, params = [], []
    if f.room_id is not None:
        parts.append(f"{alias}.room_id = ?")
        params.append(f.room_id)
    if f.rooms is not None:
        crew_wide = f" OR {alias}.room_id IS NULL" if alias == "e" else ""
        parts.append(f"({alias}.room_id IN ({','.join('?' * len(f.rooms)) or 'NULL'}){crew_wide})")
        params.extend(f.rooms)
    if f.bot:
        parts.append(f"{bot_col} = ?")
        params.append(f.bot)
    if f.since is not None:
        parts.append(f"{alias}.created_at >= ?")
        params.append(f.since)
    if f.until is not None:
        parts.append(f"{alias}.created_at < ?")
        params.append(f.until)
    return ("AND " + " AND ".join(parts) if parts else ""), tuple(params)


def _learnt_in(evidence: str, column: str, owner: str, rooms: tuple[int, ...] | None) -> tuple[str, tuple]:
    """SQL (" AND ...") keeping what was learnt from a message in `rooms` (its `evidence` table links it to
    messages by `column` = `owner`), or from no message at all (the owner's notes and imports: crew-wide)."""
    if rooms is None:
        return "", ()
    marks = ",".join("?" * len(rooms)) or "NULL"
    return (f" AND (NOT EXISTS (SELECT 1 FROM {evidence} ev WHERE ev.{column} = {owner})"
            f" OR EXISTS (SELECT 1 FROM {evidence} ev JOIN messages m ON m.id = ev.message_id"
            f" WHERE ev.{column} = {owner} AND m.room_id IN ({marks})))"), tuple(rooms)


@dataclass
class Entity:
    id: int
    name: str
    type: str
    mentions: int
    first_seen: float
    last_seen: float
    aliases: list[str] = field(default_factory=list)


class EntityRepo:
    def __init__(self, db: Database):
        self.db = db

    def upsert(self, name: str, type_: str, message_id: int | None, now: float, aliases: Iterable[str] = ()) -> int:
        """Find the entity by name or alias (case-insensitive) or create it; record the mention once per
        message. A specific type ('person') replaces the vague 'concept'."""
        with self.db.write() as conn:
            row = conn.execute("SELECT entity_id FROM memory_aliases WHERE alias = ?", (name,)).fetchone()
            if row is None:
                for alias in aliases:
                    row = conn.execute("SELECT entity_id FROM memory_aliases WHERE alias = ?", (alias,)).fetchone()
                    if row:
                        break
            if row is None:
                entity_id = int(conn.execute(
                    "INSERT INTO memory_entities (name, type, first_seen, last_seen) VALUES (?, ?, ?, ?) RETURNING id",
                    (name, type_, now, now)).fetchone()[0])
            else:
                entity_id = int(row[0])
                conn.execute(f"UPDATE memory_entities SET last_seen = {self.db.dialect.greatest('last_seen', '?')},"
                             " type = CASE WHEN type = 'concept' THEN ? ELSE type END WHERE id = ?",
                             (now, type_, entity_id))
            conn.executemany("INSERT INTO memory_aliases (alias, entity_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             [(a, entity_id) for a in (name, *aliases)])
            if message_id is None or conn.execute(
                    "INSERT INTO memory_entity_events (entity_id, message_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (entity_id, message_id)).rowcount:
                conn.execute("UPDATE memory_entities SET mentions = mentions + 1 WHERE id = ?", (entity_id,))
        return entity_id

    def upsert_person(self, person: str, label: str, message_id: int | None, now: float) -> int:
        """The entity standing for one person ("telegram:12345"; "I" in their messages), found by that
        identity, never by name: someone calling themselves "alice" is not alice. Made on first use, named
        by the display name `label`, which also becomes its alias unless another entity has that name."""
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM memory_entities WHERE person = ? ORDER BY mentions DESC, id LIMIT 1",
                               (person,)).fetchone()
            if row is None:
                entity_id = int(conn.execute(
                    "INSERT INTO memory_entities (name, type, person, first_seen, last_seen) VALUES (?, 'person', ?, ?, ?)"
                    " RETURNING id", (label, person, now, now)).fetchone()[0])
                conn.execute("INSERT INTO memory_aliases (alias, entity_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             (label, entity_id))
            else:
                entity_id = int(row[0])
                conn.execute(f"UPDATE memory_entities SET last_seen = {self.db.dialect.greatest('last_seen', '?')},"
                             " type = 'person' WHERE id = ?", (now, entity_id))
            if message_id is None or conn.execute(
                    "INSERT INTO memory_entity_events (entity_id, message_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (entity_id, message_id)).rowcount:
                conn.execute("UPDATE memory_entities SET mentions = mentions + 1 WHERE id = ?", (entity_id,))
        return entity_id

    def find_person(self, person: str) -> Entity | None:
        """The entity of one person, by their identity ("telegram:12345")."""
        row = self.db.query_one("SELECT * FROM memory_entities WHERE person = ? ORDER BY mentions DESC, id LIMIT 1",
                                (person,))
        return self._entity(row) if row else None

    def relate(self, subject_id: int, predicate: str, object_id: int, message_id: int | None, now: float) -> int:
        with self.db.write() as conn:
            conn.execute("INSERT INTO memory_relations (subject_id, predicate, object_id, created_at)"
                         " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (subject_id, predicate, object_id, now))
            rel_id = int(conn.execute("SELECT id FROM memory_relations WHERE subject_id = ? AND predicate = ?"
                                      " AND object_id = ?", (subject_id, predicate, object_id)).fetchone()[0])
            if message_id is not None:
                conn.execute("INSERT INTO memory_relation_events (relation_id, message_id) VALUES (?, ?)"
                             " ON CONFLICT DO NOTHING", (rel_id, message_id))
        return rel_id

    def find(self, name: str) -> Entity | None:
        row = self.db.query_one(
            "SELECT e.* FROM memory_aliases a JOIN memory_entities e ON e.id = a.entity_id WHERE a.alias = ?",
            (name.strip(),))
        return self._entity(row) if row else None

    def list(self, limit: int = 200) -> list[Entity]:
        rows = self.db.query("SELECT * FROM memory_entities ORDER BY mentions DESC, last_seen DESC LIMIT ?", (limit,))
        return [self._entity(r) for r in rows]

    def aliases_in(self, words: list[str], rooms: tuple[int, ...] | None = None) -> list[Entity]:
        """Entities any of these words (or word pairs) names, learnt within `rooms` (None: anywhere): for
        priming on an incoming message."""
        if not words:
            return []
        marks = ",".join("?" * len(words))
        seen, params = _learnt_in("memory_entity_events", "entity_id", "e.id", rooms)
        rows = self.db.query(
            "SELECT DISTINCT e.* FROM memory_aliases a JOIN memory_entities e ON e.id = a.entity_id"
            f" WHERE a.alias IN ({marks}){seen} ORDER BY e.mentions DESC", (*words, *params))
        return [self._entity(r) for r in rows]

    def relations(self, entity_id: int, rooms: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
        """Every relation touching an entity learnt within `rooms` (None: anywhere), with the text of its
        supporting events there."""
        seen, params = _learnt_in("memory_relation_events", "relation_id", "r.id", rooms)
        rows = self.db.query(
            "SELECT r.id, s.name AS subject, r.predicate, o.name AS object FROM memory_relations r"
            " JOIN memory_entities s ON s.id = r.subject_id JOIN memory_entities o ON o.id = r.object_id"
            f" WHERE (r.subject_id = ? OR r.object_id = ?){seen} ORDER BY r.id", (entity_id, entity_id, *params))
        where, scope = _filters(Filters(rooms=rooms), "m", "m.author")
        out = []
        for r in rows:
            events = self.db.query(
                "SELECT m.id, m.content FROM memory_relation_events ev JOIN messages m ON m.id = ev.message_id"
                f" WHERE ev.relation_id = ? {where} ORDER BY m.id DESC LIMIT 3", (r["id"], *scope))
            out.append({"subject": r["subject"], "predicate": r["predicate"], "object": r["object"],
                        "events": [{"message_id": e[0], "text": e[1]} for e in events]})
        return out

    def events(self, entity_id: int, limit: int = 5) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT m.id, m.content, m.created_at FROM memory_entity_events ev JOIN messages m ON m.id = ev.message_id"
            " WHERE ev.entity_id = ? ORDER BY m.id DESC LIMIT ?", (entity_id, limit))
        return [{"message_id": r[0], "text": r[1], "created_at": r[2]} for r in rows]

    def count(self) -> dict[str, int]:
        e = self.db.query_one("SELECT COUNT(*) FROM memory_entities")
        r = self.db.query_one("SELECT COUNT(*) FROM memory_relations")
        return {"entities": int(e[0]) if e else 0, "relations": int(r[0]) if r else 0}

    def forget_stale(self, seen_before: float, keep_events: int) -> int:
        """Drop one-off entities (a single mention, no relation) not seen for a long time, and keep only
        the newest supporting events of the rest: the graph stays bounded."""
        with self.db.write() as conn:
            gone = conn.execute(
                "DELETE FROM memory_entities WHERE mentions <= 1 AND last_seen < ? AND id NOT IN"
                " (SELECT subject_id FROM memory_relations UNION SELECT object_id FROM memory_relations)",
                (seen_before,)).rowcount
            conn.execute(
                "DELETE FROM memory_entity_events WHERE (entity_id, message_id) IN (SELECT entity_id, message_id FROM"
                " (SELECT entity_id, message_id, ROW_NUMBER() OVER (PARTITION BY entity_id ORDER BY message_id DESC)"
                " AS n FROM memory_entity_events) AS ranked WHERE n > ?)",
                (keep_events,))
        return gone

    def _entity(self, row: Any) -> Entity:
        aliases = [r[0] for r in self.db.query("SELECT alias FROM memory_aliases WHERE entity_id = ? ORDER BY alias",
                                               (row["id"],)) if r[0] != row["name"]]
        return Entity(id=row["id"], name=row["name"], type=row["type"], mentions=row["mentions"],
                      first_seen=row["first_seen"], last_seen=row["last_seen"], aliases=aliases)


@dataclass
class Preference:
    person: str  # whose ("telegram:12345"): a display name proves nobody's identity
    label: str  # the display name they last stated it under, to show
    key: str
    text: str
    evidence: list[int] = field(default_factory=list)
    updated_at: float = 0.0


class PreferenceRepo:
    def __init__(self, db: Database):
        self.db = db

    def put(self, person: str, label: str, key: str, text: str, message_id: int | None, now: float) -> None:
        """A newer preference of the person on the same key replaces the older one ('keep it short' vs
        'more detail'); the evidence accumulates."""
        with self.db.write() as conn:
            pref_id = conn.execute(
                "INSERT INTO memory_preferences (person, label, key, text, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (person, key) DO UPDATE SET text = excluded.text,"
                " label = excluded.label, updated_at = excluded.updated_at RETURNING id",
                (person, label, key, text, now, now)).fetchone()[0]
            if message_id is not None:
                conn.execute("INSERT INTO memory_preference_evidence (preference_id, message_id)"
                             " VALUES (?, ?) ON CONFLICT DO NOTHING", (pref_id, message_id))

    def people(self) -> list[tuple[str, str]]:
        """(person, their latest display name) of everyone with a preference."""
        latest = {r[0]: r[1] for r in self.db.query("SELECT person, label FROM memory_preferences ORDER BY updated_at")}
        return sorted(latest.items(), key=lambda p: (p[1], p[0]))

    def of(self, person: str, rooms: tuple[int, ...] | None = None) -> list[Preference]:
        """A person's preferences stated within `rooms` (None: anywhere)."""
        seen, params = _learnt_in("memory_preference_evidence", "preference_id", "memory_preferences.id", rooms)
        rows = self.db.query(f"SELECT * FROM memory_preferences WHERE person = ?{seen} ORDER BY updated_at DESC",
                             (person, *params))
        out = []
        for r in rows:
            ev = self.db.query("SELECT message_id FROM memory_preference_evidence WHERE preference_id = ?"
                               " ORDER BY message_id", (r["id"],))
            out.append(Preference(r["person"], r["label"], r["key"], r["text"], [int(e[0]) for e in ev],
                                  r["updated_at"]))
        return out

    def count(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM memory_preferences")
        return int(row[0]) if row else 0


class StateRepo:
    """Small key/value bookkeeping (when consolidation last ran...)."""

    def __init__(self, db: Database):
        self.db = db

    def get(self, key: str, default: str = "") -> str:
        row = self.db.query_one("SELECT value FROM memory_state WHERE key = ?", (key,))
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT INTO memory_state (key, value) VALUES (?, ?)"
                         " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def store_large_output(db: Database, text: str, limit: int = LARGE_OUTPUT_BYTES, head_chars: int = 2000) -> str:
    """What to store in a tool_result message for `text`: itself when small; otherwise the text goes to
    `memory_blobs` (deduplicated by hash) and the message keeps its head and a reference `[blob:ID]`."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    digest = hashlib.sha256(data).hexdigest()
    with db.write() as conn:
        conn.execute("INSERT INTO memory_blobs (sha256, size, content, created_at) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT DO NOTHING", (digest, len(data), text, time.time()))
        blob_id = conn.execute("SELECT id FROM memory_blobs WHERE sha256 = ?", (digest,)).fetchone()[0]
    return f"{text[:head_chars]}\n… [output truncated: {len(data):,} bytes in full as blob:{blob_id}]"


def load_blob(db: Database, blob_id: int) -> str | None:
    row = db.query_one("SELECT content FROM memory_blobs WHERE id = ?", (blob_id,))
    return row[0] if row else None


def table_bytes(db: Database) -> int | None:
    """Bytes the memory tables and full-text indexes take (SQLite's dbstat is in most builds, not all)."""
    try:
        row = db.query_one(db.dialect.table_bytes(("memory", "messages_fts")))
    except Exception:  # noqa: BLE001 - dbstat missing: the figure is optional
        return None
    return int(row[0] or 0) if row else None
