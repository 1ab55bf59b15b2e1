"""What differs between the SQL of SQLite and of PostgreSQL, in one place. Repositories write portable SQL
(`?` parameters, `ON CONFLICT`, `RETURNING id`) and ask `db.dialect` for the few things that have no common
spelling: the larger of two values, a timestamp's local day, and full-text search."""

from __future__ import annotations


class SqliteDialect:
    name = "sqlite"

    @staticmethod
    def greatest(a: str, b: str) -> str:
        return f"MAX({a}, {b})"

    @staticmethod
    def local_day(seconds: str) -> str:
        """The local calendar day (YYYY-MM-DD) of a Unix time column."""
        return f"date({seconds}, 'unixepoch', 'localtime')"

    @staticmethod
    def text_matches(table: str, cjk: bool = False) -> str:
        """A subquery of (id, score) for the rows of `table` whose indexed text matches the one `?` parameter,
        a query in memory search's syntax (`"word" OR "two words"`); a lower score is a better match.
        SQLite: the table's FTS5 index `<table>_fts`, ranked by bm25 (negative); with `cjk`, its trigram
        index `<table>_cjk` of the texts in Japanese, Chinese or Korean (m021), the phrases trigrams."""
        fts = f"{table}_{'cjk' if cjk else 'fts'}"
        return f"SELECT rowid AS id, bm25({fts}) AS score FROM {fts} WHERE {fts} MATCH ?"

    @staticmethod
    def table_bytes(prefixes: tuple[str, ...]) -> str:
        """Bytes on disk of the tables (and their indexes) whose names start with one of `prefixes`."""
        where = " OR ".join(f"name LIKE '{p}%'" for p in prefixes)
        return f"SELECT SUM(pgsize) FROM dbstat WHERE {where}"


class PostgresDialect:
    name = "postgresql"

    @staticmethod
    def greatest(a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    @staticmethod
    def local_day(seconds: str) -> str:
        # to_timestamp is in the session's time zone, which the connection sets to this machine's.
        return f"to_char(to_timestamp({seconds}), 'YYYY-MM-DD')"

    @staticmethod
    def text_matches(table: str, cjk: bool = False) -> str:
        """PostgreSQL: the table's tsvectors in `<table>_fts` (see pg_schema), ranked by ts_rank (negated,
        so that lower is better as with bm25). websearch_to_tsquery reads the same `"phrase" OR` syntax.
        There is no trigram index here yet (m021 is SQLite's): `cjk` phrases go to the word index, which
        finds a CJK run only whole."""
        return (f"SELECT id, -ts_rank(fts, q) AS score FROM {table}_fts, nanofolks_tsquery(?) AS q"
                " WHERE fts @@ q")

    @staticmethod
    def table_bytes(prefixes: tuple[str, ...]) -> str:
        where = " OR ".join(f"c.relname LIKE '{p}%'" for p in prefixes)
        return ("SELECT SUM(CASE c.relkind WHEN 'r' THEN pg_table_size(c.oid) ELSE pg_relation_size(c.oid) END)"
                " FROM pg_class c WHERE c.relkind IN ('r', 'i')"
                f" AND c.relnamespace = current_schema()::regnamespace AND ({where})")


SQLITE = SqliteDialect()
POSTGRES = PostgresDialect()
Dialect = SqliteDialect | PostgresDialect
