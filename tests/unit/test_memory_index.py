"""The HNSW file is a cache of SQLite: crashes, deleted or corrupt files and foreign settings are repaired."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nanofolks.memory.index import VectorIndex
from nanofolks.store.db import Database
from nanofolks.store.memory import VectorRepo

DIM = 16


@pytest.fixture
def repo(db: Database) -> VectorRepo:  # on each backend (tests/conftest.py): the index is derived from either
    return VectorRepo(db)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def store(repo: VectorRepo, data: np.ndarray, start: int = 0) -> list[int]:
    return repo.put([("message", start + i, "m", v.tobytes()) for i, v in enumerate(data)])


def open_index(tmp_path: Path, repo: VectorRepo, model: str = "m") -> tuple[VectorIndex, object]:
    index = VectorIndex(tmp_path / "memory.hnsw", DIM, model, m=8, ef_construction=50, ef=50)
    return index, index.open(repo)


def test_crash_between_database_and_index_is_topped_up_on_start(tmp_path: Path, repo: VectorRepo) -> None:
    data = vectors(60)
    index, _ = open_index(tmp_path, repo)
    labels = store(repo, data[:40])
    index.add(labels, data[:40])
    index.save()
    store(repo, data[40:], start=40)  # written to SQLite, then the process "crashed" before indexing
    index, report = open_index(tmp_path, repo)
    assert report.action == "loaded" and report.added == 20
    assert len(index) == 60
    best, sim = index.search(data[55], 1)[0]
    assert repo.refs([best])[best] == ("message", 55) and sim > 0.99


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip", "meta"])
def test_missing_or_corrupt_index_is_rebuilt(tmp_path: Path, repo: VectorRepo, damage: str) -> None:
    data = vectors(50)
    index, _ = open_index(tmp_path, repo)
    index.add(store(repo, data), data)
    index.save()
    path = tmp_path / "memory.hnsw"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "flip":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        (tmp_path / "memory.hnsw.json").write_text("{not json")
    index, report = open_index(tmp_path, repo)
    assert report.action == "rebuilt" and report.reason
    assert len(index) == 50
    assert index.search(data[7], 1)[0][0] == sorted(repo.live_labels("m"))[7]
    _, report = open_index(tmp_path, repo)
    assert report.action == "loaded"  # the rebuilt file was saved and is sound


def test_other_embedder_settings_force_a_rebuild(tmp_path: Path, repo: VectorRepo) -> None:
    data = vectors(10)
    index, _ = open_index(tmp_path, repo)
    index.add(store(repo, data), data)
    index.save()
    meta = json.loads((tmp_path / "memory.hnsw.json").read_text())
    assert meta["model"] == "m"
    _, report = open_index(tmp_path, repo, model="other")
    assert report.action == "rebuilt" and "settings" in report.reason


def test_labels_dropped_from_the_database_are_marked_deleted(tmp_path: Path, repo: VectorRepo) -> None:
    data = vectors(30)
    index, _ = open_index(tmp_path, repo)
    labels = store(repo, data)
    index.add(labels, data)
    index.save()
    repo.unindex(labels[:5])  # e.g. forgotten by another process
    index, report = open_index(tmp_path, repo)
    assert report.removed == 5 and len(index) == 25
    assert all(label not in labels[:5] for label, _ in index.search(data[0], 25))


def test_churn_reuses_deleted_slots_so_the_file_stays_bounded(tmp_path: Path, repo: VectorRepo) -> None:
    index, _ = open_index(tmp_path, repo)
    sizes: list[int] = []
    previous: list[int] = []
    for round_ in range(8):
        data = vectors(300, seed=round_)
        labels = store(repo, data, start=round_ * 1000)
        index.add(labels, data)
        index.delete(previous)
        previous = labels
        index.save()
        sizes.append(index.stats()["file_bytes"])
    assert len(index) == 300
    assert index.stats()["capacity"] <= 1024
    assert max(sizes[2:]) == min(sizes[2:])  # constant once the churn is steady


def test_capacity_grows_when_full(tmp_path: Path, repo: VectorRepo) -> None:
    index, _ = open_index(tmp_path, repo)
    data = vectors(2500)
    index.add(store(repo, data), data)
    assert len(index) == 2500 and index.stats()["capacity"] >= 2500
