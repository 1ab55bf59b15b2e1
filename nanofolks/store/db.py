"""The one SQLite database: WAL mode, one writer connection per process, numbered migrations. The
PostgreSQL store (postgres.py) offers the same interface; backend.py picks one from storage.url."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from nanofolks.config import paths
from nanofolks.store.dialect import SQLITE
from nanofolks.store.migrations import migrate

T = TypeVar("T")


class StoreError(Exception):
    """A storage problem worth one clear line to the user (locked for too long, corrupt file...)."""


class _Busy(Exception):
    """Another process holds the write lock and a `quick` call must not wait for it on the event loop."""


class Database:
    """A connection shared by the threads of one process; writes are serialised by a lock and by
    `BEGIN IMMEDIATE`, so several processes (gateway, CLI) can write the same file safely."""

    dialect = SQLITE

    def __init__(self, path: Path | str, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        if str(path) != ":memory:":  # private: SQLite gives the WAL and shm files the database's mode
            if not self.path.parent.exists():
                paths.private_dir(self.path.parent)
            for file in (self.path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                if file == self.path or file.exists():
                    paths.private_file(file)
        try:
            self._conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_ms / 1000
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # what `run` calls may wait
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._unwritten_inline = False  # `quick` runs a call on the event loop that has not written yet
        with self.write() as conn:
            migrate(conn)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def local_dir(self) -> Path:
        """Where files derived from this database live (the vector index): beside it."""
        return self.path.parent

    def file_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.path, Path(f"{self.path}-wal")) if f.exists())

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the file's write lock up front, so a
        read-then-write inside it never fails half way with SQLITE_BUSY."""
        with self._lock:
            self._begin()
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
                if self._unwritten_inline:  # from now on this call waits for locks: it cannot be run again
                    self._unwritten_inline = False
                    self._set_busy_timeout(self._busy_timeout_ms)

    def _begin(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError(f"database is busy: {exc}") from exc
                if self._unwritten_inline:
                    raise _Busy from exc  # `quick` hands the call to the database thread
                time.sleep(0.01)

    def _set_busy_timeout(self, ms: int) -> None:
        self._conn.execute(f"PRAGMA busy_timeout={ms}")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def data_version(self) -> tuple[int, int]:
        """Changes since the last look, cheaply: (commits by other connections, changes by this one)."""
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0], self._conn.total_changes

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call on the database thread, off the event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nanofolks-db")
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args))

    async def quick(self, fn: Callable[..., T], *args: Any) -> T:
        """A short store call (a few rows by key) run right here on the event loop when the database is
        free: the hop to the database thread costs more than such a call (about 2 ms per gateway reply).
        When another thread holds the connection, or another process the write lock as the call begins
        to write, the call goes to the database thread like `run` (it has written nothing, so running it
        again there is safe); only a call already past its first write waits for a lock here (rare)."""
        if not self._lock.acquire(blocking=False):
            return await self.run(fn, *args)
        try:
            self._set_busy_timeout(0)  # SQLite would otherwise wait for another process's lock in C
            self._unwritten_inline = True
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:  # a read that found the file locked (rare in WAL mode)
                if "locked" not in str(exc) or not self._unwritten_inline:
                    raise
            except _Busy:
                pass
            finally:
                if self._unwritten_inline:
                    self._unwritten_inline = False
                    self._set_busy_timeout(self._busy_timeout_ms)
        finally:
            self._lock.release()
        return await self.run(fn, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            self._conn.close()
