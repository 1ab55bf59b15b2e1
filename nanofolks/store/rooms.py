"""Rooms, their members and the chats mapped to them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nanofolks.store.db import Database


@dataclass
class Room:
    id: int
    name: str
    type: str
    settings: dict[str, Any]
    version: int
    created_at: float
    members: list[str] = field(default_factory=list)


class ConflictError(Exception):
    """A compare-and-set lost its race too many times."""


class RoomRepo:
    def __init__(self, db: Database):
        self.db = db

    def create(self, name: str, type_: str, members: list[str]) -> Room:
        now = time.time()
        with self.db.write() as conn:
            room_id = conn.execute(
                "INSERT INTO rooms (name, type, created_at) VALUES (?, ?, ?) RETURNING id", (name, type_, now)
            ).fetchone()[0]
            _add_members(conn, room_id, members, now)
        room = self.get(name)
        assert room is not None
        return room

    def ensure(self, name: str, type_: str, members: list[str]) -> Room:
        """Create the room unless it exists (safe when several processes race to create it)."""
        now = time.time()
        with self.db.write() as conn:
            created = conn.execute(
                "INSERT INTO rooms (name, type, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (name, type_, now),
            ).fetchone()
            if created:
                _add_members(conn, created[0], members, now)
        room = self.get(name)
        assert room is not None
        return room

    def get(self, name: str) -> Room | None:
        row = self.db.query_one("SELECT * FROM rooms WHERE name = ?", (name,))
        return self._room(row) if row else None

    def get_by_id(self, room_id: int) -> Room | None:
        row = self.db.query_one("SELECT * FROM rooms WHERE id = ?", (room_id,))
        return self._room(row) if row else None

    def list(self) -> list[Room]:
        return [self._room(row) for row in self.db.query("SELECT * FROM rooms ORDER BY id")]

    def delete(self, name: str) -> bool:
        with self.db.write() as conn:
            return conn.execute("DELETE FROM rooms WHERE name = ?", (name,)).rowcount > 0

    def add_member(self, room_id: int, bot: str) -> bool:
        with self.db.write() as conn:
            cur = conn.execute(
                "INSERT INTO room_members (room_id, bot, joined_at, position) SELECT ?, ?, ?, COALESCE(MAX(position), -1)"
                " + 1 FROM room_members WHERE room_id = ? ON CONFLICT DO NOTHING",
                (room_id, bot, time.time(), room_id),
            )
            return cur.rowcount > 0

    def add_member_everywhere(self, bot: str) -> int:
        """A new crew member joins every room (its handle works at once wherever the user talks)."""
        with self.db.write() as conn:
            return conn.execute(
                "INSERT INTO room_members (room_id, bot, joined_at, position) SELECT id, ?, ?,"
                " (SELECT COALESCE(MAX(m.position), -1) + 1 FROM room_members m WHERE m.room_id = rooms.id)"
                " FROM rooms WHERE true ON CONFLICT DO NOTHING", (bot, time.time())).rowcount

    def remove_member(self, room_id: int, bot: str) -> bool:
        with self.db.write() as conn:
            cur = conn.execute("DELETE FROM room_members WHERE room_id = ? AND bot = ?", (room_id, bot))
            return cur.rowcount > 0

    def update_settings(
        self, room_id: int, change: Callable[[dict[str, Any]], dict[str, Any]], attempts: int = 20
    ) -> Room:
        """Read-modify-write of a room's settings as a compare-and-set on its version: if somebody
        wrote in between, re-read and apply `change` again to their result."""
        for _ in range(attempts):
            room = self.get_by_id(room_id)
            if room is None:
                raise KeyError(room_id)
            new = change(dict(room.settings))
            with self.db.write() as conn:
                cur = conn.execute(
                    "UPDATE rooms SET settings = ?, version = version + 1 WHERE id = ? AND version = ?",
                    (json.dumps(new), room_id, room.version),
                )
            if cur.rowcount == 1:
                updated = self.get_by_id(room_id)
                assert updated is not None
                return updated
        raise ConflictError(f"room {room_id}: too many concurrent changes")

    # --- chat -> room mapping ---

    def map_chat(self, channel: str, chat_id: str, room_id: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO channel_map (channel, chat_id, room_id) VALUES (?, ?, ?) "
                "ON CONFLICT (channel, chat_id) DO UPDATE SET room_id = excluded.room_id",
                (channel, chat_id, room_id),
            )

    def unmap_chat(self, channel: str, chat_id: str) -> bool:
        with self.db.write() as conn:
            cur = conn.execute("DELETE FROM channel_map WHERE channel = ? AND chat_id = ?", (channel, chat_id))
            return cur.rowcount > 0

    def add_person(self, room_id: int, person: str) -> None:
        """`person` ("telegram:12345") talks in this room: from now on their memory may see it."""
        with self.db.write() as conn:
            conn.execute("INSERT INTO room_people (room_id, person, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         (room_id, person, time.time()))

    def people(self, room_id: int) -> list[str]:
        """Who talks in the room ("telegram:12345"), in the order they came."""
        return [r[0] for r in self.db.query("SELECT person FROM room_people WHERE room_id = ? ORDER BY joined_at, person", (room_id,))]

    def rooms_of(self, person: str) -> tuple[int, ...]:
        rows = self.db.query("SELECT room_id FROM room_people WHERE person = ? ORDER BY room_id", (person,))
        return tuple(int(r[0]) for r in rows)

    def room_for_chat(self, channel: str, chat_id: str) -> Room | None:
        row = self.db.query_one(
            "SELECT rooms.* FROM channel_map JOIN rooms ON rooms.id = channel_map.room_id "
            "WHERE channel = ? AND chat_id = ?",
            (channel, chat_id),
        )
        return self._room(row) if row else None

    def mappings(self, room_id: int | None = None) -> list[tuple[str, str, str]]:
        sql = "SELECT channel, chat_id, rooms.name FROM channel_map JOIN rooms ON rooms.id = room_id"
        rows = self.db.query(sql + " WHERE room_id = ?", (room_id,)) if room_id else self.db.query(sql)
        return [(r[0], r[1], r[2]) for r in rows]

    def _room(self, row: Any) -> Room:
        members = [
            r[0] for r in self.db.query("SELECT bot FROM room_members WHERE room_id = ? ORDER BY position", (row["id"],))
        ]
        return Room(
            id=row["id"],
            name=row["name"],
            type=row["type"],
            settings=json.loads(row["settings"]),
            version=row["version"],
            created_at=row["created_at"],
            members=members,
        )


def _add_members(conn: Any, room_id: int, members: list[str], now: float) -> None:
    """A new room's members, in the order given: the first is who answers when the leader is not there."""
    conn.executemany("INSERT INTO room_members (room_id, bot, joined_at, position) VALUES (?, ?, ?, ?)",
                     [(room_id, bot, now, n) for n, bot in enumerate(members)])
