"""Forgetting, in three stages, so that the store and the index stay bounded under a long-running load:

1. mark: unprotected, low-importance entries unused for `markAfterDays`;
2. merge: a marked entry close to another entry is folded into it (sources kept);
3. archive: marked for `archiveAfterDays` and still unused -> moved to `memory_archive` (restorable), out of
   the index.

Entries marked important, "remember that" notes and procedures are protected; preferences live in their own
table and are never touched. Messages stay in the rooms' history, but leave the vector index after
`messageDays` (or beyond `maxVectors`), unless a protected entry cites them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from nanofolks.memory.consolidation import Folding
from nanofolks.store.memory import ArchiveRepo, EntityRepo, VectorRepo

if TYPE_CHECKING:
    from nanofolks.config.schema import ForgettingConfig
    from nanofolks.memory.index import VectorIndex

DAY = 86400.0
ENTITY_STALE_DAYS = 180
ENTITY_EVENTS_KEPT = 20


class Forgetting(Folding, Protocol):
    """What forgetting needs (the memory service has it)."""

    vectors: VectorRepo
    index: VectorIndex | None
    archive: ArchiveRepo
    entity_repo: EntityRepo


def forget(memory: Forgetting, cfg: ForgettingConfig, now: float) -> dict[str, int]:
    entries = memory.entries
    marked = entries.mark_unused(now - cfg.mark_after_days * DAY, cfg.min_importance, now)
    merged = 0
    for entry in entries.marked():
        target = next((other for other, sim in memory.similar_entries(int(entry.id or 0), k=4)
                       if sim >= cfg.merge_similarity and not _is_marked(memory, other)), None)
        if target is not None:
            memory.archive_entry(entry, f"merged into #{target}", now, keep_id=target)
            merged += 1
    archived = 0
    for entry in entries.marked(marked_before=now - cfg.archive_after_days * DAY):
        memory.archive_entry(entry, "unused", now)
        archived += 1
    dropped = memory.vectors.forget_messages(now - cfg.message_days * DAY, cfg.max_vectors)
    if memory.index is not None:
        memory.index.delete(dropped)
    purged = memory.archive.purge(now - cfg.purge_archive_days * DAY) if cfg.purge_archive_days else 0
    entities = memory.entity_repo.forget_stale(now - ENTITY_STALE_DAYS * DAY, ENTITY_EVENTS_KEPT)
    return {"marked": marked, "merged": merged, "archived": archived, "messages_unindexed": len(dropped),
            "archive_purged": purged, "entities_dropped": entities}


def _is_marked(memory: Folding, entry_id: int) -> bool:
    entry = memory.entries.get(entry_id)
    return entry is None or entry.marked_at is not None
