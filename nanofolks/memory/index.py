"""The HNSW vector index (hnswlib, cosine), a file beside the database that can always be rebuilt from it.

SQLite holds every vector (`memory_vectors`); this file is a cache of the graph. On open the file is
checked (sidecar JSON: model, dimension, parameters, size, CRC32) and its labels are compared with the
database: a missing, corrupt or foreign file is rebuilt, a stale one is topped up (rows written but never
indexed, e.g. a crash between the two) and labels the database dropped are marked deleted. Deleted slots
are reused by new vectors, and the index doubles when full, so its size follows the live count."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanofolks.store.memory import VectorRepo

if TYPE_CHECKING:
    import numpy as np

Progress = Callable[[int, int], None]  # (done, total)
FORMAT = 1
MIN_CAPACITY = 1024


@dataclass
class OpenReport:
    action: str  # loaded | rebuilt
    reason: str  # why it was rebuilt ('' when loaded)
    added: int  # vectors topped up from the database
    removed: int  # labels the database no longer has, marked deleted


class VectorIndex:
    def __init__(self, path: Path, dim: int, model: str, m: int = 16, ef_construction: int = 200, ef: int = 64):
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".json")
        self.dim, self.model, self.m, self.ef_construction, self.ef = dim, model, m, ef_construction, ef
        self._lock = threading.RLock()
        self._index: Any = None
        self._live: set[int] = set()
        self._deleted = 0
        self._watermark = 0  # every database label at or below this has been considered
        self.dirty = 0  # changes since the file was written

    # -- opening -------------------------------------------------------------------------------------------
    def open(self, repo: VectorRepo, progress: Progress | None = None) -> OpenReport:
        with self._lock:
            reason = self._load()
            if reason:
                self.rebuild(repo, progress)
                return OpenReport("rebuilt", reason, len(self._live), 0)
            added, removed = self._reconcile(repo, progress)
            return OpenReport("loaded", "", added, removed)

    def check(self, want: set[int]) -> tuple[str, int]:
        """Without repairing anything: why the file cannot be used ('' when it can), and how many of the
        labels the database holds (`want`) are missing from it."""
        with self._lock:
            reason = self._load()
            return reason, len(want - self._live)

    def _load(self) -> str:
        """Load the file if it is sound and built for this model; else say why not."""
        import hnswlib

        if not self.path.exists():
            return "no index file"
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return "index metadata missing or unreadable"
        expected = {"format": FORMAT, "model": self.model, "dim": self.dim, "m": self.m,
                    "ef_construction": self.ef_construction}
        if any(meta.get(k) != v for k, v in expected.items()):
            return "index built with other settings"
        if self.path.stat().st_size != meta.get("size") or _crc32(self.path) != meta.get("crc32"):
            return "index file corrupt (size or checksum differs)"
        index = hnswlib.Index(space="cosine", dim=self.dim)
        try:
            index.load_index(str(self.path), max_elements=int(meta["capacity"]), allow_replace_deleted=True)
        except (RuntimeError, ValueError, MemoryError) as exc:
            return f"index file unreadable: {exc}"
        index.set_ef(self.ef)
        self._index = index
        self._live = set(index.get_ids_list())
        self._deleted = int(meta.get("deleted", 0))
        self.dirty = 0
        return ""

    def _reconcile(self, repo: VectorRepo, progress: Progress | None) -> tuple[int, int]:
        want = repo.live_labels(self.model)
        self._watermark = max(repo.max_label(), max(want, default=0))
        removed = self._live - want
        for label in removed:
            self._mark_deleted(label)
        missing = sorted(want - self._live)
        added = 0
        for batch in repo.iter_vectors_for(self.model, missing):
            self._add_unlocked(*_unpack(batch, self.dim))
            added += len(batch)
            if progress:
                progress(added, len(missing))
        return added, len(removed)

    def rebuild(self, repo: VectorRepo, progress: Progress | None = None) -> int:
        """A fresh graph from every vector in the database."""
        import hnswlib

        with self._lock:
            total = len(repo.live_labels(self.model))
            index = hnswlib.Index(space="cosine", dim=self.dim)
            index.init_index(max_elements=max(MIN_CAPACITY, int(total * 1.25)), ef_construction=self.ef_construction,
                             M=self.m, allow_replace_deleted=True)
            index.set_ef(self.ef)
            self._index, self._live, self._deleted = index, set(), 0
            self._watermark = repo.max_label()
            done = 0
            for batch in repo.iter_vectors(self.model):
                self._add_unlocked(*_unpack(batch, self.dim))
                done += len(batch)
                if progress:
                    progress(done, total)
            self.dirty += 1
            self.save()
            return done

    # -- changes ----------------------------------------------------------------------------------------------
    def add(self, labels: list[int], vectors: np.ndarray) -> None:
        with self._lock:
            self._add_unlocked(labels, vectors)

    def _add_unlocked(self, labels: list[int], vectors: np.ndarray) -> None:
        import numpy as np

        keep = [i for i, label in enumerate(labels) if label and label not in self._live]
        if not keep:
            return
        labels = [labels[i] for i in keep]
        vectors = np.ascontiguousarray(vectors[keep], dtype=np.float32)
        reuse = min(self._deleted, len(labels))
        free = self._index.get_max_elements() - self._index.get_current_count()
        if len(labels) - reuse > free:
            needed = self._index.get_current_count() + len(labels) - reuse
            self._index.resize_index(max(needed, self._index.get_max_elements() * 2))
        # Deleted slots are reused first, so churn (forgetting) does not grow the file.
        try:
            self._index.add_items(vectors, labels, replace_deleted=reuse > 0)
        except RuntimeError:  # our count of deleted slots was off (an old file): grow and append
            self._index.resize_index(self._index.get_max_elements() * 2 + len(labels))
            self._index.add_items(vectors, labels)
            reuse = 0
        self._deleted -= reuse
        self._live.update(labels)
        self._watermark = max(self._watermark, max(labels))
        self.dirty += len(labels)

    def delete(self, labels: list[int]) -> None:
        with self._lock:
            for label in labels:
                if label in self._live:
                    self._mark_deleted(label)

    def _mark_deleted(self, label: int) -> None:
        try:
            self._index.mark_deleted(label)
            self._deleted += 1
        except RuntimeError:  # already deleted in the file we loaded
            pass
        self._live.discard(label)
        self.dirty += 1

    def catch_up(self, repo: VectorRepo) -> int:
        """Add vectors other writers (another process, a crashed run) stored since we last looked."""
        with self._lock:
            added = 0
            for batch in repo.iter_vectors(self.model, after_label=self._watermark):
                self._add_unlocked(*_unpack(batch, self.dim))
                added += len(batch)
            return added

    # -- reading ----------------------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest labels and their cosine similarity, best first."""
        with self._lock:
            k = min(k, len(self._live))
            if k <= 0:
                return []
            if self._index.ef != max(self.ef, k):  # ef must be >= k; set only when it changes
                self._index.set_ef(max(self.ef, k))
            labels, distances = self._index.knn_query(vector.reshape(1, -1), k=k)
            return [(int(lbl), 1.0 - float(d)) for lbl, d in zip(labels[0], distances[0], strict=True)]

    def __len__(self) -> int:
        return len(self._live)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "file": str(self.path), "model": self.model, "dim": self.dim, "live": len(self._live),
                "deleted_slots": self._deleted,
                "capacity": self._index.get_max_elements() if self._index is not None else 0,
                "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
                "unsaved_changes": self.dirty,
            }

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the file atomically (temp file, then rename), the sidecar last: a crash in between leaves
        a checksum mismatch, which the next open repairs."""
        with self._lock:
            if self._index is None or not self.dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_beside(self.path)
            self._index.save_index(str(tmp))
            meta = {"format": FORMAT, "model": self.model, "dim": self.dim, "m": self.m,
                    "ef_construction": self.ef_construction, "capacity": self._index.get_max_elements(),
                    "deleted": self._deleted, "size": tmp.stat().st_size, "crc32": _crc32(tmp)}
            os.replace(tmp, self.path)
            meta_tmp = _temp_beside(self.meta_path)
            meta_tmp.write_text(json.dumps(meta))
            os.replace(meta_tmp, self.meta_path)
            self.dirty = 0


def _temp_beside(path: Path) -> Path:
    """A new file next to `path`, for a write-then-rename. Unique per call: two services of one process
    (or two processes) saving the same index must not write each other's temp file."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def _unpack(batch: list[tuple[int, bytes]], dim: int) -> tuple[list[int], np.ndarray]:
    import numpy as np

    labels = [label for label, _ in batch]
    vectors = np.frombuffer(b"".join(blob for _, blob in batch), dtype=np.float32).reshape(len(batch), dim)
    return labels, vectors


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc
