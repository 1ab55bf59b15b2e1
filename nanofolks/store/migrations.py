"""Numbered schema migrations: small functions, applied once each, recorded in `_migrations`.

Append new migrations at the end of MIGRATIONS; never edit one that has shipped."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the current transaction (executescript would COMMIT first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement[:80]}")


def m001_core(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE rooms (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL CHECK (type IN ('open', 'project', 'direct', 'coordination')),
            settings TEXT NOT NULL DEFAULT '{}',
            version INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE TABLE room_members (
            room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            bot TEXT NOT NULL,
            joined_at REAL NOT NULL,
            PRIMARY KEY (room_id, bot)
        );
        CREATE TABLE channel_map (
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            PRIMARY KEY (channel, chat_id)
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            author TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'system')),
            kind TEXT NOT NULL DEFAULT 'chat',
            content TEXT NOT NULL,
            platform TEXT NOT NULL DEFAULT 'cli',
            sender TEXT NOT NULL DEFAULT '',
            turn_id TEXT NOT NULL DEFAULT '',
            meta TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        );
        CREATE INDEX messages_room ON messages (room_id, id);
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            title TEXT NOT NULL,
            owner TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'todo'
                CHECK (status IN ('todo', 'in_progress', 'blocked', 'done')),
            priority TEXT NOT NULL DEFAULT 'medium'
                CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
            due TEXT,
            version INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (room_id, number)
        );
        CREATE TABLE task_events (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            from_value TEXT,
            to_value TEXT,
            reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX task_events_task ON task_events (task_id, id);
        CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            model TEXT NOT NULL,
            bot TEXT NOT NULL DEFAULT '',
            room_id INTEGER,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            ok INTEGER NOT NULL DEFAULT 1,
            latency_ms REAL NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT ''
        );
        """
    )


def m002_gateway(conn: sqlite3.Connection) -> None:
    """Durable ingress and egress for the gateway, pairing, and small per-channel state."""
    run_script(
        conn,
        """
        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            account TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            chat_type TEXT NOT NULL DEFAULT 'private',
            sender_id TEXT NOT NULL DEFAULT '',
            sender_name TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'denied')),
            received_at REAL NOT NULL,
            done_at REAL,
            UNIQUE (platform, account, chat_id, message_id)
        );
        CREATE INDEX inbox_pending ON inbox (platform, account, status, id);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            inbox_id INTEGER REFERENCES inbox(id) ON DELETE SET NULL,
            platform TEXT NOT NULL,
            account TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            reply_to TEXT,
            text TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'delivered', 'uncertain', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            platform_message_id TEXT,
            error TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX outbox_due ON outbox (platform, account, status, id);
        CREATE TABLE pairing_requests (
            platform TEXT NOT NULL,
            code TEXT NOT NULL,
            user_id TEXT NOT NULL,
            username TEXT NOT NULL DEFAULT '',
            chat_id TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (platform, code)
        );
        CREATE TABLE allowed_senders (
            platform TEXT NOT NULL,
            user_id TEXT NOT NULL,
            username TEXT NOT NULL DEFAULT '',
            approved_at REAL NOT NULL,
            PRIMARY KEY (platform, user_id)
        );
        CREATE TABLE channel_state (
            platform TEXT NOT NULL,
            account TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (platform, account, key)
        );
        """
    )


def m003_memory(conn: sqlite3.Connection) -> None:
    """Memory: knowledge entries, full-text search over entries and messages (the event log), vectors
    (the source of truth behind the HNSW index file), entities and relations, preferences, archive, blobs."""
    fts = "tokenize='porter unicode61 remove_diacritics 2'"
    run_script(
        conn,
        f"""
        CREATE TABLE memory_entries (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'note',
            text TEXT NOT NULL,
            room_id INTEGER,
            bot TEXT NOT NULL DEFAULT '',
            sender TEXT NOT NULL DEFAULT '',
            importance REAL NOT NULL DEFAULT 0.5,
            protected INTEGER NOT NULL DEFAULT 0,
            access_count INTEGER NOT NULL DEFAULT 0,
            last_used REAL,
            marked_at REAL,
            origin TEXT NOT NULL DEFAULT '',
            origin_key TEXT UNIQUE,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX memory_entries_marked ON memory_entries (marked_at);
        CREATE TABLE memory_sources (
            entry_id INTEGER NOT NULL REFERENCES memory_entries(id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            PRIMARY KEY (entry_id, message_id)
        );
        CREATE INDEX memory_sources_message ON memory_sources (message_id);
        CREATE VIRTUAL TABLE memory_entries_fts USING fts5(text, content='memory_entries', content_rowid='id', {fts});
        CREATE TRIGGER memory_entries_ai AFTER INSERT ON memory_entries BEGIN
            INSERT INTO memory_entries_fts (rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER memory_entries_ad AFTER DELETE ON memory_entries BEGIN
            INSERT INTO memory_entries_fts (memory_entries_fts, rowid, text) VALUES ('delete', old.id, old.text);
            DELETE FROM memory_vectors WHERE source = 'entry' AND ref_id = old.id;
        END;
        CREATE TRIGGER memory_entries_au AFTER UPDATE OF text ON memory_entries BEGIN
            INSERT INTO memory_entries_fts (memory_entries_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO memory_entries_fts (rowid, text) VALUES (new.id, new.text);
        END;
        CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id', {fts});
        INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
        CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            DELETE FROM memory_vectors WHERE source = 'message' AND ref_id = old.id;
        END;
        CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TABLE memory_vectors (
            label INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL CHECK (source IN ('entry', 'message')),
            ref_id INTEGER NOT NULL,
            model TEXT NOT NULL,
            vector BLOB,
            created_at REAL NOT NULL,
            UNIQUE (source, ref_id)
        );
        CREATE TABLE memory_entities (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            type TEXT NOT NULL DEFAULT 'concept',
            mentions INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        CREATE TABLE memory_aliases (
            alias TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
            entity_id INTEGER NOT NULL REFERENCES memory_entities(id) ON DELETE CASCADE
        );
        CREATE INDEX memory_aliases_entity ON memory_aliases (entity_id);
        CREATE TABLE memory_entity_events (
            entity_id INTEGER NOT NULL REFERENCES memory_entities(id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            PRIMARY KEY (entity_id, message_id)
        );
        CREATE TABLE memory_relations (
            id INTEGER PRIMARY KEY,
            subject_id INTEGER NOT NULL REFERENCES memory_entities(id) ON DELETE CASCADE,
            predicate TEXT NOT NULL,
            object_id INTEGER NOT NULL REFERENCES memory_entities(id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            UNIQUE (subject_id, predicate, object_id)
        );
        CREATE INDEX memory_relations_object ON memory_relations (object_id);
        CREATE TABLE memory_relation_events (
            relation_id INTEGER NOT NULL REFERENCES memory_relations(id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            PRIMARY KEY (relation_id, message_id)
        );
        CREATE TABLE memory_preferences (
            id INTEGER PRIMARY KEY,
            sender TEXT NOT NULL,
            key TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (sender, key)
        );
        CREATE TABLE memory_preference_evidence (
            preference_id INTEGER NOT NULL REFERENCES memory_preferences(id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            PRIMARY KEY (preference_id, message_id)
        );
        CREATE TABLE memory_archive (
            id INTEGER PRIMARY KEY,
            entry_id INTEGER NOT NULL,
            data TEXT NOT NULL,
            reason TEXT NOT NULL,
            archived_at REAL NOT NULL
        );
        CREATE TABLE memory_blobs (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            content TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE memory_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """
    )


def m004_messages_by_turn(conn: sqlite3.Connection) -> None:
    # The gateway re-runs a turn after a crash and must find the message it already stored.
    conn.execute("CREATE INDEX messages_turn ON messages (turn_id) WHERE turn_id != ''")


def m005_multiuser_rejected(conn: sqlite3.Connection) -> None:
    """Updates an adapter could not parse: kept with the reason, so they are confirmed and skipped, not lost."""
    run_script(
        conn,
        """
        CREATE TABLE rejected_updates (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            account TEXT NOT NULL,
            ref TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL,
            raw TEXT NOT NULL DEFAULT '',
            at REAL NOT NULL
        );
        CREATE INDEX rejected_updates_platform ON rejected_updates (platform, account, id);
        """
    )


def m005_multiuser_pairing(conn: sqlite3.Connection) -> None:
    # When a stranger was last sent their code: a sender who keeps writing is answered once a minute.
    conn.execute("ALTER TABLE pairing_requests ADD COLUMN answered_at REAL NOT NULL DEFAULT 0")
    conn.execute("CREATE INDEX pairing_requests_sender ON pairing_requests (platform, user_id, created_at)")


def m005_multiuser_exec_runs(conn: sqlite3.Connection) -> None:
    """Commands the exec tool ran per turn: one that timed out is not run again when the turn is re-run."""
    run_script(
        conn,
        """
        CREATE TABLE exec_runs (
            turn_id TEXT NOT NULL,
            command_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            PRIMARY KEY (turn_id, command_hash)
        );
        """
    )


def m008_routing_tiers_spend(conn: sqlite3.Connection) -> None:
    """The tier of every model call, the kind of its error, each room's sticky tier, spend notices told."""
    run_script(
        conn,
        """
        ALTER TABLE usage ADD COLUMN tier TEXT NOT NULL DEFAULT '';
        ALTER TABLE usage ADD COLUMN error_kind TEXT NOT NULL DEFAULT '';
        CREATE INDEX usage_at ON usage (at, bot, cost);
        CREATE INDEX inbox_done_at ON inbox (done_at) WHERE done_at IS NOT NULL;
        CREATE TABLE routing_rooms (
            room_id INTEGER PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
            tier TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE spend_notices (
            day TEXT NOT NULL,
            scope TEXT NOT NULL,
            level INTEGER NOT NULL,
            told_at REAL NOT NULL,
            PRIMARY KEY (day, scope, level)
        );
        """
    )


def m006_secrets_skill_approvals(conn: sqlite3.Connection) -> None:
    # A skill that is not low risk loads only once approved, and only at the content hash approved.
    conn.execute(
        "CREATE TABLE skill_approvals (name TEXT PRIMARY KEY, content_hash TEXT NOT NULL,"
        " decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')), risk TEXT NOT NULL,"
        " decided_at REAL NOT NULL)"
    )


def m007_context_markers(conn: sqlite3.Connection) -> None:
    # A room's context markers (summaries, new starts, notices) are found by kind at every turn.
    conn.execute("CREATE INDEX messages_room_kind ON messages (room_id, kind, id)")


def m009_routines_worklog(conn: sqlite3.Connection) -> None:
    """Routines and their runs (one row per due slot: a slot runs once), what heartbeats already
    reported, and the work log (with full-text search)."""
    run_script(
        conn,
        """
        CREATE TABLE routines (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            message TEXT NOT NULL,
            schedule TEXT NOT NULL,
            tz TEXT NOT NULL DEFAULT '',
            room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            bot TEXT NOT NULL DEFAULT '',
            quiet INTEGER NOT NULL DEFAULT 0,
            enabled INTEGER NOT NULL DEFAULT 1,
            created_by TEXT NOT NULL DEFAULT 'cli',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE routine_runs (
            id INTEGER PRIMARY KEY,
            routine_id INTEGER NOT NULL REFERENCES routines(id) ON DELETE CASCADE,
            due_at REAL NOT NULL,
            trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'missed', 'manual')),
            status TEXT NOT NULL CHECK (status IN ('running', 'answered', 'delivered', 'failed', 'skipped')),
            answer TEXT NOT NULL DEFAULT '',
            delivered_to TEXT NOT NULL DEFAULT '[]',
            error TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            finished_at REAL,
            UNIQUE (routine_id, due_at)
        );
        CREATE INDEX routine_runs_status ON routine_runs (status) WHERE status IN ('running', 'answered');
        CREATE TABLE heartbeat_seen (
            bot TEXT NOT NULL,
            finding TEXT NOT NULL,
            seen_at REAL NOT NULL,
            PRIMARY KEY (bot, finding)
        );
        CREATE TABLE worklog (
            id INTEGER PRIMARY KEY,
            room_id INTEGER REFERENCES rooms(id) ON DELETE CASCADE,
            bot TEXT NOT NULL,
            kind TEXT NOT NULL,
            summary TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            ok INTEGER NOT NULL DEFAULT 1,
            artifacts TEXT NOT NULL DEFAULT '[]',
            turn_id TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        );
        CREATE INDEX worklog_room ON worklog (room_id, id);
        CREATE VIRTUAL TABLE worklog_fts USING fts5(summary, detail, content='worklog', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2');
        CREATE TRIGGER worklog_ai AFTER INSERT ON worklog BEGIN
            INSERT INTO worklog_fts (rowid, summary, detail) VALUES (new.id, new.summary, new.detail);
        END;
        CREATE TRIGGER worklog_ad AFTER DELETE ON worklog BEGIN
            INSERT INTO worklog_fts (worklog_fts, rowid, summary, detail)
                VALUES ('delete', old.id, old.summary, old.detail);
        END;
        """
    )


def m005_multiuser_room_people(conn: sqlite3.Connection) -> None:
    # The people who talk in a room: what a person's memory search and priming may see.
    conn.execute("CREATE TABLE room_people (room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,"
                 " person TEXT NOT NULL, joined_at REAL NOT NULL, PRIMARY KEY (room_id, person))")
    conn.execute("CREATE INDEX room_people_person ON room_people (person)")


def m005_multiuser_room_leases(conn: sqlite3.Connection) -> None:
    # One turn at a time per room across processes (gateway, `chat -m`): who holds the room, until when.
    conn.execute("CREATE TABLE room_leases (room_id INTEGER PRIMARY KEY, holder TEXT NOT NULL,"
                 " expires_at REAL NOT NULL)")


def m010_house_outbox_rendered(conn: sqlite3.Connection) -> None:
    """Outbox rows queued before replies were rendered at queue time hold Markdown, which the adapters used
    to convert at send; adapters now send a row as it is. Such rows still waiting are converted here, as the
    adapter would have done (each chunk was split so that its converted form fits the platform's limit).
    They are the rows older than m008: it reached main together with the renderer change, so a version that
    renders had applied it before queueing anything."""
    from nanofolks.channels.formatting import (
        markdown_to_slack_mrkdwn,
        markdown_to_telegram_html,
        markdown_to_whatsapp,
    )

    if not isinstance(conn, sqlite3.Connection):
        return  # a PostgreSQL database is created by these migrations, empty: no row from before
    convert = {"telegram": markdown_to_telegram_html, "slack": markdown_to_slack_mrkdwn,
               "whatsapp": markdown_to_whatsapp}  # Discord renders Markdown itself
    [renderer_since] = conn.execute(
        "SELECT applied_at FROM _migrations WHERE name = 'm008_routing_tiers_spend'").fetchone()
    rows = conn.execute(
        "SELECT id, platform, text FROM outbox WHERE status <> 'delivered' AND created_at < ?",
        (renderer_since,)).fetchall()
    conn.executemany("UPDATE outbox SET text = ? WHERE id = ?",
                     [(convert[platform](text), row_id) for row_id, platform, text in rows if platform in convert])


def m018_fleet_workers(conn: sqlite3.Connection) -> None:
    # Gateway workers sharing a PostgreSQL database (store/fleet.py): the live ones, and the lease on a
    # message one of them is answering. SQLite's single gateway leaves both empty.
    run_script(
        conn,
        """
        CREATE TABLE workers (
            id INTEGER PRIMARY KEY,
            lock_key INTEGER NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at REAL NOT NULL,
            seen_at REAL NOT NULL,
            holds TEXT NOT NULL DEFAULT '[]'
        );
        ALTER TABLE inbox ADD COLUMN claimed_by INTEGER;
        ALTER TABLE inbox ADD COLUMN lease_until REAL;
        CREATE INDEX inbox_pending_by_chat ON inbox (platform, account, chat_id, id) WHERE status = 'pending';
        """,
    )


def m017_hiring_crew(conn: sqlite3.Connection) -> None:
    # The crew's changes (hires, retirements, new supervisors): the org's history and the daily hiring cap.
    conn.execute("CREATE TABLE crew_changes (id INTEGER PRIMARY KEY, handle TEXT NOT NULL, action TEXT NOT NULL,"
                 " actor TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL)")
    conn.execute("CREATE INDEX crew_changes_time ON crew_changes (action, created_at)")
    # A hire the leader proposed in a room, waiting for the user's yes there: one per room.
    conn.execute("CREATE TABLE hire_proposals (room_id INTEGER PRIMARY KEY, sender TEXT NOT NULL,"
                 " turn_id TEXT NOT NULL, proposal TEXT NOT NULL, created_at REAL NOT NULL)")


def m019_dashboard_sessions_activity(conn: sqlite3.Connection) -> None:
    """The dashboard's one-time login links and signed-in browsers (only hashes of both), and the
    activity events nothing else records (memory consolidation, errors)."""
    run_script(
        conn,
        """
        CREATE TABLE dashboard_logins (
            token_hash TEXT PRIMARY KEY,
            expires_at REAL NOT NULL,
            used_at REAL
        );
        CREATE TABLE dashboard_sessions (
            id_hash TEXT PRIMARY KEY,
            csrf TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE TABLE activity (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            room_id INTEGER REFERENCES rooms(id) ON DELETE CASCADE,
            bot TEXT NOT NULL DEFAULT '',
            summary TEXT NOT NULL,
            ok INTEGER NOT NULL DEFAULT 1
        );
        """
    )


def m020_pgstore_member_order(conn: sqlite3.Connection) -> None:
    # A room's members in the order they were added (the first answers when the leader is not a member):
    # SQLite's rowid said so before, and PostgreSQL has none. A PostgreSQL database is created by these
    # migrations, empty; only a SQLite one has rows from before this one.
    conn.execute("ALTER TABLE room_members ADD COLUMN position INTEGER NOT NULL DEFAULT 0")
    if isinstance(conn, sqlite3.Connection):
        conn.execute("UPDATE room_members SET position = rowid")


# Text holding Japanese kana, CJK ideographs or Hangul (SQLite's GLOB compares code points).
CJK_GLOB = "*[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]*"


def m021_house_memory_cjk(conn: sqlite3.Connection) -> None:
    """Keyword search for Japanese, Chinese and Korean. The word tokenizer (unicode61) takes a run of CJK
    text without spaces as one token, so no word inside it can match; a trigram index can. It holds only
    the texts that contain such characters (its own copy: few rows), beside the word index. SQLite only:
    PostgreSQL's text search has no trigram index without an extension (see store/dialect.py)."""
    if not isinstance(conn, sqlite3.Connection):
        return
    for source, table, column in (("memory_entries_cjk", "memory_entries", "text"),
                                  ("messages_cjk", "messages", "content")):
        run_script(
            conn,
            f"""
            CREATE VIRTUAL TABLE {source} USING fts5({column}, tokenize='trigram');
            INSERT INTO {source} (rowid, {column}) SELECT id, {column} FROM {table} WHERE {column} GLOB '{CJK_GLOB}';
            CREATE TRIGGER {source}_ai AFTER INSERT ON {table} WHEN new.{column} GLOB '{CJK_GLOB}' BEGIN
                INSERT INTO {source} (rowid, {column}) VALUES (new.id, new.{column});
            END;
            CREATE TRIGGER {source}_ad AFTER DELETE ON {table} BEGIN
                DELETE FROM {source} WHERE rowid = old.id;
            END;
            CREATE TRIGGER {source}_au AFTER UPDATE OF {column} ON {table} BEGIN
                DELETE FROM {source} WHERE rowid = old.id;
                INSERT INTO {source} (rowid, {column}) SELECT new.id, new.{column} WHERE new.{column} GLOB '{CJK_GLOB}';
            END;
            """,
        )


def m022_house_cjk_ascii_fast_path(conn: sqlite3.Connection) -> None:
    """m021's triggers GLOB every stored text for CJK characters: about 40 µs for a 300-character message,
    on every insert. A text whose bytes are as many as its characters is plain ASCII and skips the GLOB
    (SQLite's CASE stops at the first branch that holds; AND in a trigger's WHEN evaluates both sides)."""
    if not isinstance(conn, sqlite3.Connection):
        return
    for source, table, column in (("memory_entries_cjk", "memory_entries", "text"),
                                  ("messages_cjk", "messages", "content")):
        has_cjk = (f"CASE WHEN length(CAST(new.{column} AS BLOB)) = length(new.{column}) THEN 0"
                   f" ELSE new.{column} GLOB '{CJK_GLOB}' END")
        run_script(
            conn,
            f"""
            DROP TRIGGER {source}_ai;
            DROP TRIGGER {source}_au;
            CREATE TRIGGER {source}_ai AFTER INSERT ON {table} WHEN {has_cjk} BEGIN
                INSERT INTO {source} (rowid, {column}) VALUES (new.id, new.{column});
            END;
            CREATE TRIGGER {source}_au AFTER UPDATE OF {column} ON {table} BEGIN
                DELETE FROM {source} WHERE rowid = old.id;
                INSERT INTO {source} (rowid, {column}) SELECT new.id, new.{column} WHERE {has_cjk};
            END;
            """,
        )


def m023_identity_people(conn: sqlite3.Connection) -> None:
    """Memory knows a person by who they are ("telegram:12345", the terminal's owner), no longer by the
    display name they give, which anyone can take: their preferences and their own entity ("I work at...")."""
    from nanofolks.identity import LOCAL_OWNER, person
    from nanofolks.memory.preferences import detect

    # Who wrote each user message: the terminal's owner, a routine, or the sender of the gateway's inbox row
    # the turn answered (its id ends the turn id, "telegram-inbox-42").
    conn.execute("ALTER TABLE messages ADD COLUMN person TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE messages SET person = ? WHERE role = 'user' AND platform = 'cli'", (LOCAL_OWNER,))
    conn.execute("UPDATE messages SET person = sender WHERE role = 'user' AND platform = 'routine'")
    asked: dict[int, list[int]] = {}
    for message_id, turn_id in conn.execute("SELECT id, turn_id FROM messages WHERE role = 'user' AND person = ''"):
        inbox_id = turn_id.rpartition("-inbox-")[2]
        if "-inbox-" in turn_id and inbox_id.isdigit():
            asked.setdefault(int(inbox_id), []).append(int(message_id))
    ids = list(asked)
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        rows = conn.execute(f"SELECT id, platform, sender_id FROM inbox WHERE id IN ({','.join('?' * len(part))})",
                            tuple(part)).fetchall()
        conn.executemany("UPDATE messages SET person = ? WHERE id = ?",
                         [(person(platform, sender_id), m) for inbox_id, platform, sender_id in rows
                          for m in asked[int(inbox_id)]])

    # Preferences: one per person and key, rebuilt from the messages that stated them (one display name
    # may hide several people, each with their own wish); a message whose writer is unknown teaches none.
    run_script(
        conn,
        """
        CREATE TABLE memory_people_preferences (
            id INTEGER PRIMARY KEY,
            person TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            key TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (person, key)
        );
        CREATE TABLE memory_people_preference_evidence (
            preference_id INTEGER NOT NULL REFERENCES memory_people_preferences(id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            PRIMARY KEY (preference_id, message_id)
        );
        """,
    )
    stated = conn.execute(
        "SELECT p.key, p.text, m.id, m.content, m.person, m.sender, m.created_at FROM memory_preferences p"
        " JOIN memory_preference_evidence ev ON ev.preference_id = p.id JOIN messages m ON m.id = ev.message_id"
        " WHERE m.person <> '' ORDER BY m.id").fetchall()
    for key, text, message_id, content, who, label, at in stated:
        said = dict(detect(content)).get(key, text)  # what this message asked (the row holds the latest)
        pref_id = conn.execute(
            "INSERT INTO memory_people_preferences (person, label, key, text, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (person, key) DO UPDATE SET text = excluded.text,"
            " label = excluded.label, updated_at = excluded.updated_at RETURNING id",
            (who, label, key, said, at, at)).fetchone()[0]
        conn.execute("INSERT INTO memory_people_preference_evidence (preference_id, message_id) VALUES (?, ?)"
                     " ON CONFLICT DO NOTHING", (pref_id, message_id))
    run_script(
        conn,
        """
        DROP TABLE memory_preference_evidence;
        DROP TABLE memory_preferences;
        ALTER TABLE memory_people_preferences RENAME TO memory_preferences;
        ALTER TABLE memory_people_preference_evidence RENAME TO memory_preference_evidence;
        """,
    )

    # A person's own entity was the one named as they called themselves: it is theirs where one person alone
    # wrote under that name; where several did (someone took another's name) it stays nobody's, as what
    # each said of themselves cannot be told apart.
    conn.execute("ALTER TABLE memory_entities ADD COLUMN person TEXT")
    conn.execute("CREATE INDEX memory_entities_person ON memory_entities (person)")
    names = conn.execute("SELECT sender, MIN(person) FROM messages WHERE role = 'user' AND person <> ''"
                         " GROUP BY sender HAVING COUNT(DISTINCT person) = 1").fetchall()
    conn.executemany("UPDATE memory_entities SET person = ? WHERE name = ? AND type = 'person'",
                     [(who, name) for name, who in names])


def m024_identity_messages_by_person(conn: sqlite3.Connection) -> None:
    # Priming asks what the sender said lately in other rooms at every message: without this index each
    # asking read the whole message table backwards (37 ms at 200k messages for someone who said nothing
    # elsewhere; 0.02 ms with it).
    conn.execute("CREATE INDEX messages_person ON messages (person, id)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_core,
    m002_gateway,
    m003_memory,
    m004_messages_by_turn,
    m005_multiuser_rejected,
    m005_multiuser_pairing,
    m005_multiuser_exec_runs,
    m005_multiuser_room_people,
    m005_multiuser_room_leases,
    m008_routing_tiers_spend,
    m006_secrets_skill_approvals,
    m007_context_markers,
    m009_routines_worklog,
    m010_house_outbox_rendered,
    m018_fleet_workers,
    m017_hiring_crew,
    m019_dashboard_sessions_activity,
    m020_pgstore_member_order,
    m021_house_memory_cjk,
    m022_house_cjk_ascii_fast_path,
    m023_identity_people,
    m024_identity_messages_by_person,
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; runs inside the caller's write transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        fn(conn)
        conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (fn.__name__, time.time()))
        applied.append(fn.__name__)
    return applied
