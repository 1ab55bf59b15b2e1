"""MemoryService: the one object the rest of the app uses to remember and recall.

Writes go to SQLite first (the source of truth); embedding and indexing happen in a background worker
thread, in batches, so a reply never waits for its own message to be indexed. The HNSW file beside the
database is checked against SQLite when first used and topped up or rebuilt."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanofolks.identity import LOCAL_OWNER
from nanofolks.memory import entities as entity_rules
from nanofolks.memory import preferences as preference_rules
from nanofolks.memory.centring import centre_for
from nanofolks.memory.index import OpenReport, Progress, VectorIndex
from nanofolks.memory.search import Hit, hybrid_search
from nanofolks.routing.tiers import cheapest_model
from nanofolks.store.activity import ActivityRepo
from nanofolks.store.memory import (
    ArchiveRepo,
    EntityRepo,
    Entry,
    EntryRepo,
    Event,
    Filters,
    PreferenceRepo,
    SearchRepo,
    StateRepo,
    VectorRepo,
    table_bytes,
)

if TYPE_CHECKING:
    import numpy as np

    from nanofolks.config.schema import Config
    from nanofolks.llm.client import LLM
    from nanofolks.memory.embeddings import Embedder
    from nanofolks.orchestrator.turn import Turn
    from nanofolks.store.db import Database

log = logging.getLogger(__name__)

BATCH = 32  # texts per embedding call
MIN_EVENT_CHARS = 8  # "ok", "thanks!" are not worth a vector
DAY = 86400.0
SAVE_EVERY_CHANGES = 1000
SAVE_EVERY_SECONDS = 60.0
IDLE_WAKE_SECONDS = 60.0
# The indexer embeds once the crew has been quiet this long (at most MAX_DEFER_SECONDS late): a passage
# batch running beside the next reply's query embedding slowed that reply from ~8 to ~17 ms on two cores.
QUIET_SECONDS = 1.0
MAX_DEFER_SECONDS = 10.0


class MemoryError_(Exception):  # noqa: N801 - MemoryError is a builtin
    """A memory operation the user asked for cannot be done (unknown id, unknown room...)."""


class MemoryService:
    def __init__(self, config: Config, db: Database, index_path: Path | None = None,
                 embedder: Embedder | None = None, llm: LLM | None = None):
        self.config = config
        self.db = db
        self.index_path = index_path or db.local_dir / "memory.hnsw"  # derived: each worker its own
        self.llm = llm
        self._embedder = embedder
        self.entries = EntryRepo(db)
        self.vectors = VectorRepo(db)
        self.search_repo = SearchRepo(db)
        self.entity_repo = EntityRepo(db)
        self.preferences = PreferenceRepo(db)
        self.archive = ArchiveRepo(db)
        self.state = StateRepo(db)
        self.index: VectorIndex | None = None
        self.last_open: OpenReport | None = None
        self._open_lock = threading.Lock()
        self._index_lock = threading.Lock()  # one indexer at a time in this process
        self._watermark = 0  # messages up to this id have been seen by this process's indexer
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._last_activity = 0.0  # monotonic time of the last stored event (see QUIET_SECONDS)
        self._stop = threading.Event()
        # In a fleet of gateways only the holder of the `memory` lock learns, embeds and consolidates (else two
        # workers would read the same pending messages); the others' searches catch up from the vectors table.
        self._leading = threading.Event()
        self._leading.set()  # one gateway, the CLI: this process does it all
        self._last_save = time.monotonic()
        self._busy: Callable[[], bool] = lambda: False  # see defer_while
        self._defer_at_most = 0.0
        self._deferred_since: float | None = None
        self._primed: OrderedDict[str, asyncio.Future[str]] = OrderedDict()

    # -- parts, loaded on first use ---------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from nanofolks.memory.embeddings import make_embedder

            self._embedder = make_embedder(self.config)
        return self._embedder

    def ensure_index(self, progress: Progress | None = None) -> VectorIndex:
        """Open the index file, checked against the database (topped up, or rebuilt when unusable)."""
        with self._open_lock:
            if self.index is None:
                p = self.config.memory.index
                index = VectorIndex(self.index_path, self.embedder.dim, self.embedder.name, p.m,
                                    p.ef_construction, p.ef)
                self.last_open = index.open(self.vectors, progress)
                if self.last_open.action == "rebuilt" or self.last_open.added or self.last_open.removed:
                    log.info("memory index %s: %s", self.last_open.action, self.last_open)
                self.index = index
            return self.index

    # -- writing --------------------------------------------------------------------------------------------
    def note_messages(self, ids: Iterable[int | None] = ()) -> None:
        """Tell the background indexer that new events were stored. Returns at once: the worker reads
        whatever is pending from the database, so a lost wake-up is caught at the next one or at start."""
        if not self.config.memory.enabled:
            return
        self._last_activity = time.monotonic()
        self._start_worker()
        self._wake.set()

    def add(self, text: str, kind: str = "note", room_id: int | None = None, sender: str = "",
            importance: float = 0.9, protected: bool = True, origin: str = "cli", sources: Iterable[int] = (),
            index: bool = True) -> Entry:
        """Store one entry (by default a protected note, as `memory add` and "remember that" make) and,
        unless `index` is False, embed it now."""
        text = " ".join(text.split()) if "\n" not in text else text.strip()
        if not text:
            raise MemoryError_("nothing to remember: the text is empty")
        entry = Entry(text=text, kind=kind, room_id=room_id, sender=sender, importance=importance,
                      protected=protected, origin=origin, sources=list(sources))
        entry.id, _ = self.entries.add(entry)
        self._learn_entities(text, None, LOCAL_OWNER, sender or "user", time.time())  # the owner's own note
        if index:
            self.index_pending()
        return entry

    def plan_import(self, passages: list[str]) -> ImportPlan:
        """What importing these passages would do, asked before it starts (the estimate, a resumed run)."""
        keys = list(dict.fromkeys(_import_key(p) for p in passages if p.strip()))
        known = self.entries.known_keys(keys)
        return ImportPlan(passages=len(keys), known=len(known), to_embed=self.vectors.pending_count()
                          + len(keys) - len(known))

    def import_passages(self, passages: list[str], origin: str, progress: Progress | None = None) -> tuple[int, int]:
        """Store passages as 'import' entries (unprotected: they fade when never used) and embed them, one
        batch stored then one batch embedded, so that `progress(embedded, to embed)` starts at once.
        Resumable: a passage is known by its text, so a re-run after a stop stores only the rest, and what
        is stored but not embedded yet is embedded first. Returns (new, already known)."""
        new = known = embedded = 0  # embedded: handled by the indexer (a too-short message is seen, not embedded)
        total = self.plan_import(passages).to_embed if progress else 0
        texts = list(dict.fromkeys(p.strip() for p in passages if p.strip()))
        for start in range(0, len(texts), BATCH):
            chunk = texts[start:start + BATCH]
            results = self.entries.add_many([Entry(text=p, kind="import", importance=0.5, origin=origin,
                                                   origin_key=_import_key(p)) for p in chunk])
            for text, (_, created) in zip(chunk, results, strict=True):
                if created:
                    self._learn_entities(text, None, LOCAL_OWNER, "user", time.time())
            new += sum(created for _, created in results)
            known += sum(not created for _, created in results)
            embedded += self._index(limit=BATCH)[0]
            if progress:
                progress(embedded, max(total, embedded))
        while done := self._index(limit=BATCH)[0]:  # what is left: a resumed run's, or messages meanwhile
            embedded += done
            if progress:
                progress(embedded, max(total, embedded))
        return new, known

    def forget(self, ref: str) -> str:
        """`memory forget ID`: an entry goes to the archive (restorable); a message leaves the index."""
        source, _, raw = ref.rpartition(":")
        source = source or "entry"
        if not raw.isdigit() or source not in ("entry", "message"):
            raise MemoryError_(f"not a memory id: {ref!r} (use an entry id like 12, or message:345)")
        if source == "message":
            found = self.vectors.vector_of("message", int(raw))
            if found is None:
                raise MemoryError_(f"message {raw} is not in the memory index")
            self.vectors.unindex([found[0]], forgotten=True)
            if self.index is not None:
                self.index.delete([found[0]])
            return f"message {raw} will no longer be recalled (it stays in its room's history)"
        entry = self.entries.get(int(raw))
        if entry is None:
            raise MemoryError_(f"no memory entry {raw}")
        self.archive_entry(entry, "forgotten on request", time.time())
        return f"entry {raw} archived (restore with `nanofolks memory restore`)"

    def restore(self, archive_id: int) -> Entry:
        entry = self.archive.restore(archive_id)
        if entry is None:
            raise MemoryError_(f"no archived memory {archive_id}")
        self.index_pending()
        return entry

    def archive_entry(self, entry: Entry, reason: str, now: float, keep_id: int | None = None) -> None:
        """Archive an entry (folding it into `keep_id` when merging) and take it out of the index."""
        found = self.vectors.vector_of("entry", int(entry.id or 0))
        if keep_id is not None:
            self.entries.merge_into(keep_id, entry, reason, now)
        else:
            self.entries.archive(entry, reason, now)
        if found and self.index is not None:
            self.index.delete([found[0]])

    def follow(self) -> None:
        """Another worker of the fleet learns and embeds: this one's background worker only catches up."""
        self._leading.clear()

    def lead(self) -> None:
        """This worker now holds the fleet's `memory` lock: learn and embed whatever is pending."""
        self._leading.set()
        self._start_worker()
        self._wake.set()

    # -- the indexer ----------------------------------------------------------------------------------------
    def index_pending(self, progress: Progress | None = None) -> int:
        """Learn from and embed every event and entry not yet indexed; returns how many were embedded.
        Safe to run in several processes at once: a vector row is written once per item."""
        return self._index(progress)[1]

    def _index(self, progress: Progress | None = None, limit: int | None = None) -> tuple[int, int]:
        """(handled, embedded) of the events and entries not yet indexed, at most `limit`; events first, so
        that a long import never holds the conversation's messages back for more than a batch."""
        if not self._leading.is_set():  # the fleet's `memory` holder does it (it looks every few seconds)
            return 0, 0
        with self._index_lock:
            index = self.ensure_index()
            handled = embedded = 0
            while limit is None or handled < limit:
                size = BATCH if limit is None else min(BATCH, limit - handled)
                events = self.vectors.pending_messages(self._watermark, size)
                if events:
                    self._learn(events)
                    embedded += self._embed([("message", e.id, e.content if e.role != "system" else "")
                                             for e in events], index)
                    self._watermark = events[-1].id
                    handled += len(events)
                else:
                    pending = self.vectors.pending_entries(size)
                    if not pending:
                        break
                    embedded += self._embed([("entry", i, text) for i, text in pending], index)
                    handled += len(pending)
                if progress:
                    progress(embedded, embedded)
            return handled, embedded

    def _embed(self, items: list[tuple[str, int, str]], index: VectorIndex) -> int:
        keep = [it for it in items if len(it[2].strip()) >= (MIN_EVENT_CHARS if it[0] == "message" else 1)]
        skip = [(s, i, self.embedder.name, None) for s, i, t in items if (s, i, t) not in keep]
        vectors = self.embedder.passages([t for _, _, t in keep]) if keep else None
        rows: list[tuple[str, int, str, bytes | None]] = [
            (s, i, self.embedder.name, vectors[n].tobytes()) for n, (s, i, _) in enumerate(keep)] if keep else []
        labels = self.vectors.put(rows + skip)
        if keep and vectors is not None:
            index.add(labels[:len(keep)], vectors)
        return len(keep)

    def _learn(self, events: list[Event]) -> None:
        """The cheap rules on the user's messages: "remember that ...", preferences, entities."""
        users = [e for e in events if e.role == "user"]
        for event in users:
            label = event.sender or "user"
            note = preference_rules.remember_note(event.content)
            if note:
                self.entries.add(Entry(text=note, kind="note", room_id=event.room_id, sender=label, importance=0.9,
                                       protected=True, origin="chat:remember", origin_key=f"remember:{event.id}",
                                       sources=[event.id], created_at=event.created_at))
            if event.person:  # a preference is someone's only when we know who said it
                for key, text in preference_rules.detect(event.content):
                    self.preferences.put(event.person, label, key, text, event.id, event.created_at)
            self._learn_entities(event.content, event.id, event.person, label, event.created_at)
        if users and self.config.memory.llm_extraction and self.llm is not None and not _in_event_loop():
            model = cheapest_model(self.config)
            try:
                found = asyncio.run(entity_rules.llm_extract(self.llm, model, [e.content for e in users]))
            except Exception as exc:  # noqa: BLE001 - the rules' findings stand; the next batch tries again
                log.warning("memory: model entity extraction failed: %s", exc)
                return
            for event, result in zip(users, found, strict=True):
                self._store_found(result, event.id, event.person, event.sender or "user", event.created_at)

    def _learn_entities(self, text: str, msg_id: int | None, person: str, label: str, now: float) -> None:
        self._store_found(entity_rules.extract(text), msg_id, person, label, now)

    def _store_found(self, found: entity_rules.Found, msg_id: int | None, person: str, label: str,
                     now: float) -> None:
        """Store what one message (or note) names. "I" is the writer's own entity, found by `person` (their
        identity, never their display name `label`); when who wrote it is unknown, what they said of
        themselves is left out."""
        ids: dict[str, int] = {}

        def entity(name: str, type_: str = "concept") -> int:
            if name not in ids:
                ids[name] = (self.entity_repo.upsert_person(person, label, msg_id, now) if name == entity_rules.SELF
                             else self.entity_repo.upsert(name, type_, msg_id, now, found.aliases.get(name, ())))
            return ids[name]

        for name, type_ in found.entities.items():
            entity(name, type_)
        for subject, predicate, obj in found.relations:
            if person or entity_rules.SELF not in (subject, obj):
                self.entity_repo.relate(entity(subject), predicate, entity(obj), msg_id, now)

    # -- the background worker ----------------------------------------------------------------------------
    def _start_worker(self) -> None:
        with self._open_lock:
            if self._worker is None or not self._worker.is_alive():
                self._stop.clear()
                self._worker = threading.Thread(target=self._run, name="nanofolks-memory", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            self._wake.clear()
            self._wait_for_quiet()
            try:
                if self._leading.is_set():
                    self.index_pending()
                    self._maintain(time.time())
                else:
                    self.ensure_index().catch_up(self.vectors)  # the holder's vectors, also before each search
                self._save_if_due()
                backoff = 1.0
            except Exception:  # noqa: BLE001 - the worker must outlive one bad batch; it retries
                log.exception("memory indexer failed; retrying in %.0fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 300)
                continue
            self._wake.wait(IDLE_WAKE_SECONDS)

    def _wait_for_quiet(self) -> None:
        deadline = time.monotonic() + MAX_DEFER_SECONDS
        while not self._stop.is_set():
            now = time.monotonic()
            quiet_for = now - self._last_activity
            if quiet_for >= QUIET_SECONDS or now >= deadline:
                return
            self._stop.wait(min(QUIET_SECONDS - quiet_for, deadline - now))

    def _maintain(self, now: float) -> None:
        """The scheduled jobs: consolidation and forgetting (daily), merging duplicates (weekly)."""
        cfg = self.config.memory.consolidation
        if not cfg.enabled:
            return
        last = self.state.get("consolidated_at")
        if not last:  # the schedule starts now, not at the epoch
            self.state.set("consolidated_at", str(now))
            self.state.set("merged_at", str(now))
            return
        if now - float(last) >= cfg.every_hours * 3600:
            if self._deferred():
                return
            merge = now - float(self.state.get("merged_at", "0")) >= cfg.merge_every_days * DAY
            report = self.consolidate(now, merge=merge)
            log.info("memory consolidation: %s", report)

    def defer_while(self, busy: Callable[[], bool], at_most: float) -> None:
        """Hold consolidation back while `busy()` (the gateway: a conversation is live), at most
        `at_most` seconds; the worker looks again at its next wake-up."""
        self._busy, self._defer_at_most = busy, at_most

    def _deferred(self) -> bool:
        if not self._busy():
            self._deferred_since = None
            return False
        self._deferred_since = self._deferred_since or time.monotonic()
        if time.monotonic() - self._deferred_since >= self._defer_at_most:
            self._deferred_since = None
            return False  # never postponed forever
        log.info("memory consolidation waits: a conversation is live")
        return True

    def _save_if_due(self) -> None:
        index = self.index
        if index is not None and index.dirty and (
                index.dirty >= SAVE_EVERY_CHANGES or time.monotonic() - self._last_save >= SAVE_EVERY_SECONDS):
            index.save()
            self._last_save = time.monotonic()

    def wait_indexed(self, timeout: float = 60.0) -> bool:
        """True once nothing is pending (tests, and `memory status` after a burst)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.vectors.pending_messages(0, 1) and not self.vectors.pending_entries(1):
                return True
            self._wake.set()
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Stop the worker after its current batch and write the index file."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=60)
            self._worker = None
        if self.index is not None:
            self.index.save()

    # -- reading ----------------------------------------------------------------------------------------------
    def query_vector(self, text: str) -> np.ndarray | None:
        """The query's embedding; None when the embedder fails (search falls back to keywords)."""
        try:
            return self.embedder.query(text)
        except Exception as exc:  # noqa: BLE001 - memory must never break a reply
            log.warning("memory: query embedding failed: %s", exc)
            return None

    def search(self, query: str, limit: int = 10, room: str | None = None, bot: str | None = None,
               since: float | None = None, until: float | None = None, touch: bool = True,
               rooms: tuple[int, ...] | None = None) -> list[Hit]:
        """`rooms`: only these rooms and crew-wide entries (the asking person's scope); None: everything."""
        filters = Filters(bot=bot, since=since, until=until, rooms=rooms)
        if room:
            filters.room_id = self.search_repo.room_id(room.lstrip("#"))
            if filters.room_id is None or (rooms is not None and filters.room_id not in rooms):
                raise MemoryError_(f"no room named {room!r}")
        return self.search_with_vector(query, self.query_vector(query), limit, (), filters, touch)

    def search_with_vector(self, text: str, vector: np.ndarray | None, limit: int, exclude: tuple[int, ...] = (),
                           filters: Filters | None = None, touch: bool = True) -> list[Hit]:
        index = self.ensure_index()
        index.catch_up(self.vectors)  # vectors other processes stored since we last looked
        hits = hybrid_search(self.search_repo, self.vectors, index, vector, text, limit, filters, exclude,
                             centre=centre_for(self.embedder.name))
        if touch:
            self.entries.touch(h.item.id for h in hits if h.item.source == "entry")
        return hits

    def similar_entries(self, entry_id: int, k: int) -> list[tuple[int, float]]:
        """Entries nearest to this one (by their stored vectors), best first."""
        import numpy as np

        found = self.vectors.vector_of("entry", entry_id)
        if found is None:
            return []
        index = self.ensure_index()
        hits = index.search(np.frombuffer(found[1], dtype=np.float32), k + 1)
        refs = self.vectors.refs([label for label, _ in hits])
        return [(refs[label][1], sim) for label, sim in hits
                if label in refs and refs[label][0] == "entry" and refs[label][1] != entry_id]

    async def prime(self, turn: Turn, model: str) -> str:
        """The memory block for this turn's system prompt; shared by the bots of one turn, and '' when
        memory is off, empty, or slower than `memory.primingTimeout` (a reply never waits longer)."""
        from nanofolks.memory.priming import assemble

        cfg = self.config.memory
        if not cfg.enabled or cfg.priming_tokens <= 0:
            return ""
        future = self._primed.get(turn.turn_id)
        if future is None:
            future = asyncio.ensure_future(assemble(
                self, turn.room.id, turn.person, turn.text, model, cfg.priming_tokens,
                self.config.orchestrator.history_messages, turn.scope))
            self._primed[turn.turn_id] = future
            while len(self._primed) > 16:
                self._primed.popitem(last=False)
        try:
            return await asyncio.wait_for(asyncio.shield(future), cfg.priming_timeout)
        except Exception as exc:  # noqa: BLE001 - a timeout or a failing look-up costs the memory block only
            log.warning("memory priming skipped: %s", str(exc) or type(exc).__name__)
            return ""

    def profile(self, person: str, rooms: tuple[int, ...] | None = None) -> list[str]:
        """What is known about this person ("telegram:12345"), learnt within `rooms` (None: anywhere), as
        lines about "this person"."""
        from nanofolks.memory.priming import describe

        entity = self.entity_repo.find_person(person)
        return [describe(r, entity.name) for r in self.entity_repo.relations(entity.id, rooms)] if entity else []

    def entities_named_in(self, text: str, rooms: tuple[int, ...] | None = None) -> list[list[str]]:
        """For each entity the text names: a line saying what it is and how it relates, as learnt within
        `rooms` (None: anywhere)."""
        from nanofolks.memory.priming import describe

        out = []
        for e in self.entity_repo.aliases_in(entity_rules.mentioned_names(text), rooms)[:5]:
            rels = self.entity_repo.relations(e.id, rooms)
            out.append([f"{e.name} ({e.type})" + (": " + "; ".join(describe(r) for r in rels[:4]) if rels else "")])
        return out

    def entity(self, name: str) -> dict[str, Any]:
        e = self.entity_repo.find(name)
        if e is None:
            raise MemoryError_(f"no entity named {name!r} (see `nanofolks memory entities`)")
        return {"name": e.name, "type": e.type, "aliases": e.aliases, "mentions": e.mentions,
                "first_seen": e.first_seen, "last_seen": e.last_seen,
                "relations": self.entity_repo.relations(e.id), "events": self.entity_repo.events(e.id)}

    def list_entities(self) -> list[dict[str, Any]]:
        return [{"name": e.name, "type": e.type, "aliases": e.aliases, "mentions": e.mentions,
                 "last_seen": e.last_seen} for e in self.entity_repo.list()]

    # -- jobs -------------------------------------------------------------------------------------------------
    def consolidate(self, now: float | None = None, merge: bool = True, forget: bool = True) -> dict[str, Any]:
        """Distil the events since the last run into knowledge entries, then (optionally) merge
        near-duplicates and run forgetting."""
        from nanofolks.memory import consolidation, forgetting

        now = now or time.time()
        cfg = self.config.memory
        since = float(self.state.get("consolidated_until", "0"))
        events = self.search_repo.day_events(since, now)
        found = self._distil_llm(events) if cfg.consolidation.llm else []
        found = found or consolidation.distil(events)
        known = self.entries.normalised_texts()
        fresh = [e for e in found if " ".join(e.text.lower().split()) not in known]
        created = sum(c for _, c in self.entries.add_many(fresh))
        self.state.set("consolidated_until", str(now))
        self.state.set("consolidated_at", str(now))
        self.index_pending()
        report: dict[str, Any] = {"events": len(events), "entries_created": created}
        if merge:
            report["merged"] = consolidation.merge_duplicates(self, cfg.consolidation.merge_similarity, now)
            self.state.set("merged_at", str(now))
        if forget and cfg.forgetting.enabled:
            report["forgetting"] = forgetting.forget(self, cfg.forgetting, now)
        ActivityRepo(self.db).add("consolidation", f"memory consolidated: {len(events)} events, {created} new entries"
                                  + (f", {report['merged']} merged" if merge else ""))
        return report

    def _distil_llm(self, events: list[Event]) -> list[Entry]:
        from nanofolks.memory.consolidation import distil_llm

        if self.llm is None or not events or _in_event_loop():
            return []
        model = cheapest_model(self.config)
        rooms: dict[int, list[Event]] = {}
        for event in events:  # one room per call: an entry must not blend what was said in different rooms
            rooms.setdefault(event.room_id, []).append(event)
        out: list[Entry] = []
        try:
            for said in rooms.values():
                for start in range(0, len(said), 100):
                    out += asyncio.run(distil_llm(self.llm, model, said[start:start + 100]))
        except Exception as exc:  # noqa: BLE001 - the rules distil instead
            log.warning("memory: model consolidation failed, using rules: %s", exc)
            return []
        return out

    def rebuild_index(self, reembed: bool = False, progress: Callable[[str, int, int], None] | None = None) -> dict:
        """A fresh index file from the vectors in the database; vectors of another embedder (or all, with
        `reembed`) are embedded again."""
        dropped = self.vectors.reset(None if reembed else self.embedder.name)
        with self._open_lock:
            p = self.config.memory.index
            index = VectorIndex(self.index_path, self.embedder.dim, self.embedder.name, p.m, p.ef_construction, p.ef)
            count = index.rebuild(self.vectors, (lambda d, t: progress("index", d, t)) if progress else None)
            self.index = index
            self._watermark = 0
        embedded = self.index_pending((lambda d, t: progress("embed", d, t)) if progress else None)
        index.save()
        return {"indexed_from_db": count, "embedded": embedded, "dropped_stale_vectors": dropped}

    def status(self) -> dict[str, Any]:
        index = self.ensure_index()
        report = self.last_open
        return {
            **self.entries.count(), "archived": self.archive.count(), **self.entity_repo.count(),
            "preferences": self.preferences.count(), "embedder": self.embedder.name,
            "pending": self.vectors.pending_count(),
            "vectors": self.vectors.counts(), "index": index.stats(),
            "index_health": ("rebuilt: " + report.reason) if report and report.action == "rebuilt" else (
                f"topped up {report.added}, removed {report.removed}" if report and (report.added or report.removed)
                else "ok"),
            "db_memory_bytes": table_bytes(self.db),
            "db_file_bytes": self.db.file_bytes(),  # None on PostgreSQL: no file of ours
        }


@dataclass
class ImportPlan:
    passages: int  # distinct passages in the file
    known: int  # stored by an earlier import (this one stopped, or the same text elsewhere)
    to_embed: int  # what the import will embed: its new passages and whatever was left pending


def _import_key(text: str) -> str:
    return "import:" + hashlib.sha1(text.strip().encode()).hexdigest()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
