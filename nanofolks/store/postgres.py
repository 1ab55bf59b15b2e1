"""The store on PostgreSQL: the SQLite `Database`'s interface over a psycopg 3 connection pool, so that
every repository runs unchanged on either (see docs/storage.md).

- Parameters: repositories write `?`; each statement is rewritten once to psycopg's `%s` (cached).
- Rows: index or column name, like sqlite3.Row; NUMERIC results (SUM of integers) come back as int/float.
- `write()`: one transaction holding a transaction-scoped advisory lock, so writers take turns exactly as
  SQLite's BEGIN IMMEDIATE makes them, and a read-then-write inside it stays correct (see docs/architecture.md).
- Migrations: the same functions as on SQLite, their DDL translated by pg_schema."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from nanofolks.config import paths
from nanofolks.store.db import StoreError
from nanofolks.store.dialect import POSTGRES
from nanofolks.store.migrations import migrate
from nanofolks.store.pg_schema import SchemaConnection, helpers

T = TypeVar("T")
WRITE_LOCK = 0x4E46  # "NF": the advisory lock's first key; the second is the schema's hash
CONNECT_TIMEOUT = 10  # seconds
POOL_WAIT = 30  # seconds a call may wait for a free connection (all busy, or the server gone)
DB_THREADS = 8  # `run` threads; the pool has two connections more, for the memory worker and direct calls


class Row:
    """A result row read by position or by column name (sqlite3.Row's interface)."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]):
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key]] if isinstance(key, str) else self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in reversed(list(enumerate(names)))}  # a repeated name: the first, as SQLite
    return lambda values: Row(values, index)


@functools.lru_cache(maxsize=2048)
def to_psycopg(sql: str) -> str:
    """`?` parameters (outside quoted strings and names) as `%s`; every literal `%` as `%%`."""
    out, quote = [], ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote:
            quote = "" if ch == quote else quote
            out.append(ch)
        else:
            quote = ch if ch in "'\"" else ""
            out.append("%s" if ch == "?" else ch)
    return "".join(out)


class PgConnection:
    """The connection a `write()` block is handed: sqlite3.Connection's execute/executemany. In a write
    transaction statements are pipelined: each is sent without waiting for the one before, and a result
    (rows, rowcount) is waited for only when asked for; a statement whose result nobody reads costs no
    round trip of its own (`release`'s DELETE goes with BEGIN and COMMIT: one round trip in all)."""

    __slots__ = ("_conn", "_pipeline")

    def __init__(self, conn: Any, pipeline: Any = None):
        self._conn = conn
        self._pipeline = pipeline

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self._conn.execute(to_psycopg(sql), params) if params else self._conn.execute(sql)
        return cursor if self._pipeline is None else Pending(cursor, self._pipeline)

    def executemany(self, sql: str, rows: Any) -> Any:
        cursor = self._conn.cursor()
        cursor.executemany(to_psycopg(sql), list(rows))
        return cursor if self._pipeline is None else Pending(cursor, self._pipeline)


class Pending:
    """A pipelined statement's result: reading it first waits for everything sent so far (once)."""

    __slots__ = ("_cursor", "_pipeline")

    def __init__(self, cursor: Any, pipeline: Any):
        self._cursor = cursor
        self._pipeline = pipeline

    def _ready(self) -> Any:
        if self._cursor.pgresult is None:
            self._pipeline.sync()
        return self._cursor

    def fetchone(self) -> Row | None:
        return self._ready().fetchone()

    def fetchall(self) -> list[Row]:
        return self._ready().fetchall()

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._ready().rowcount


class PgDatabase:
    """A pool of connections shared by the threads of one process; several processes (workers on several
    machines) share the database."""

    dialect = POSTGRES

    def __init__(self, url: str, max_connections: int = DB_THREADS + 2, local_dir: Path | None = None):
        psycopg, psycopg_pool = _import_driver()
        self.url = url
        self.location = describe(url)
        self.local_dir = local_dir or paths.home()  # this worker's derived files (the vector index)
        try:  # one direct attempt first: its error says why (refused, no such database...); a pool's would not
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self.location}: {_first_line(exc)}") from exc
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max_connections, open=False, name="nanofolks", configure=_configure,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT})
        self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        self._local = threading.local()  # the write transaction this thread is in, if any
        self._executor: ThreadPoolExecutor | None = None
        self._max_connections = max_connections
        with self._pool.connection() as conn:
            schema_key = conn.execute("SELECT hashtext(current_schema())").fetchone()[0]
        self._lock = f"SELECT pg_advisory_xact_lock({WRITE_LOCK}, {int(schema_key)})"
        with self.write() as conn:
            english = conn.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = 'english'").fetchone()
            for statement in helpers("english" if english else "simple"):
                conn.execute(statement)
            migrate(SchemaConnection(conn))

    @contextlib.contextmanager
    def write(self) -> Iterator[PgConnection]:
        """One write transaction; the advisory lock makes writers take turns, as BEGIN IMMEDIATE does."""
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("a write transaction is already open in this thread")
        with self._connection() as raw, raw.pipeline() as pipeline:
            raw.execute("BEGIN")
            raw.execute(self._lock)
            conn = self._local.conn = PgConnection(raw, pipeline)
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):  # a broken connection: the pool replaces it
                    raw.execute("ROLLBACK")
                    pipeline.sync()
                raise
            else:
                raw.execute("COMMIT")
                pipeline.sync()  # the error of a statement whose result nobody read is raised here
            finally:
                self._local.conn = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._reading() as conn:
            return conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._reading() as conn:
            return conn.execute(sql, params).fetchone()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[PgConnection]:
        writing = getattr(self._local, "conn", None)
        if writing is not None:  # inside this thread's write(): see what it wrote, as SQLite's one connection does
            yield writing
            return
        with self._connection() as raw:
            yield PgConnection(raw)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; losing the server is one clear line (StoreError), whatever was running."""
        import psycopg
        import psycopg_pool

        try:
            with self._pool.connection(timeout=POOL_WAIT) as raw:
                try:
                    yield raw
                except psycopg.OperationalError as exc:
                    if not raw.broken:
                        raise
                    raise StoreError(f"lost the connection to PostgreSQL at {self.location}: {_first_line(exc)}") \
                        from exc
        except psycopg_pool.PoolTimeout as exc:
            raise StoreError(f"no connection to PostgreSQL at {self.location} within {POOL_WAIT}s: the server"
                             " does not answer, or every connection is busy") from exc

    def data_version(self) -> tuple[int, int]:
        """Changes since the last look: the server's WAL position moves with every commit (by anyone)."""
        row = self.query_one("SELECT pg_current_wal_lsn() - '0/0'")
        return (int(row[0]) if row else 0), 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call on a database thread, off the event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=min(DB_THREADS, self._max_connections),
                                                thread_name_prefix="nanofolks-pg")
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args))

    async def quick(self, fn: Callable[..., T], *args: Any) -> T:
        """As `run`: a call to the server may wait on the network or on another worker's write lock,
        which the event loop must not."""
        return await self.run(fn, *args)

    def file_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._pool.close()


def _configure(conn: Any) -> None:
    """Each new pooled connection: rows like sqlite3.Row, numbers as Python numbers, this machine's zone."""
    from psycopg.adapt import Loader

    class NumberLoader(Loader):  # SUM(bigint) is NUMERIC: an int when whole, else a float (SQLite's answers)
        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

    conn.adapters.register_loader("numeric", NumberLoader)
    conn.row_factory = _row_factory
    conn.execute("SELECT set_config('TimeZone', %s, false)", (local_zone(),))
    # A commit returns before its WAL reaches the disk, as SQLite's WAL with synchronous=NORMAL does: a
    # crash of the server's machine may lose the last moments, never consistency. A server, database or
    # role that sets synchronous_commit itself is left as it is.
    conn.execute("SELECT set_config('synchronous_commit', 'off', false) FROM pg_settings"
                 " WHERE name = 'synchronous_commit' AND source = 'default'")


def local_zone() -> str:
    """This machine's time zone name, for days counted in SQL ('localtime' in SQLite)."""
    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    with contextlib.suppress(OSError):
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return "UTC"


def describe(url: str) -> str:
    """The URL without its password, for messages and `storage status`."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - an unreadable URL is reported by whoever opens it
        return "postgresql://?"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    options = f"?options={info['options']}" if info.get("options") else ""  # e.g. a schema of its own
    return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}{options}"


def _import_driver() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise StoreError("PostgreSQL storage needs psycopg: pip install 'nanofolks[postgres]'") from exc
    return psycopg, psycopg_pool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
