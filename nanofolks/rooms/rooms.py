"""Room rules on top of the store: valid names, the `general` room, membership, chat mapping."""

from __future__ import annotations

import hashlib
import re

from nanofolks.crew.crew import LEADER, Crew
from nanofolks.store.rooms import Room, RoomRepo

ROOM_TYPES = ("open", "project", "direct", "coordination")
GENERAL = "general"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RoomError(Exception):
    """A room problem worth one clear line to the user."""


def validate_room_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise RoomError(
            f"invalid room name {name!r}: use 1-64 letters, digits, '-' or '_'"
        )
    return name


def chat_room_name(platform: str, kind: str, chat_id: str) -> str:
    """`telegram-dm-12345`: a valid room name for a chat (ids with other characters get a hash to stay unique)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", chat_id)
    name = f"{platform}-{kind}-{safe}"
    if safe != chat_id or len(name) > 64:
        name = f"{name[:50]}-{hashlib.sha1(chat_id.encode()).hexdigest()[:8]}"
    return name


def parse_chat_ref(ref: str) -> tuple[str, str]:
    """`telegram:12345` -> ("telegram", "12345")."""
    channel, sep, chat_id = ref.partition(":")
    if not sep or not channel or not chat_id or not re.fullmatch(r"[a-z]+", channel):
        raise RoomError(f"invalid chat {ref!r}: expected CHANNEL:CHAT_ID, e.g. telegram:123456")
    return channel, chat_id


class Rooms:
    def __init__(self, repo: RoomRepo, crew: Crew):
        self.repo = repo
        self.crew = crew

    def general(self) -> Room:
        return self.repo.ensure(GENERAL, "open", self.crew.handles)

    def get(self, name: str) -> Room:
        validate_room_name(name)
        room = self.repo.get(name)
        if room is None:
            if name == GENERAL:
                return self.general()
            raise RoomError(f"no room named {name!r} (see `nanofolks room list`)")
        return room

    def create(self, name: str, type_: str = "project", members: list[str] | None = None) -> Room:
        validate_room_name(name)
        if type_ not in ROOM_TYPES:
            raise RoomError(f"invalid room type {type_!r}: choose one of {', '.join(ROOM_TYPES)}")
        if self.repo.get(name):
            raise RoomError(f"room {name!r} already exists")
        if members is None:
            members = self.crew.handles if type_ == "open" else [LEADER]
        for bot in members:
            self._bot(bot)
        return self.repo.create(name, type_, members)

    def list(self) -> list[Room]:
        self.general()
        return self.repo.list()

    def invite(self, name: str, bot: str) -> Room:
        room = self.get(name)
        self.repo.add_member(room.id, self._bot(bot))
        return self.get(name)

    def remove(self, name: str, bot: str) -> Room:
        room = self.get(name)
        handle = self._bot(bot)
        if handle not in room.members:
            raise RoomError(f"@{handle} is not in room {name!r}")
        if len(room.members) == 1:
            raise RoomError(f"@{handle} is the last member of {name!r}; a room needs at least one bot")
        self.repo.remove_member(room.id, handle)
        return self.get(name)

    def for_chat(self, channel: str, chat_id: str) -> Room:
        """The room a platform chat is mapped to; a chat not mapped yet talks in `general`."""
        return self.repo.room_for_chat(channel, chat_id) or self.general()

    def for_conversation(self, platform: str, chat_id: str, chat_type: str, *, owner: bool,
                         shared_dms: bool = False) -> Room:
        """The room a chat talks in, made at its first message. Each person's direct chat is a room of its
        own (one person's turn never waits for, nor reads, another's), except the owner's, which talks in
        `general`, and every one with `channels.sharedDms`. A group, or a thread, is a room of its own."""
        mapped = self.repo.room_for_chat(platform, chat_id)
        if mapped is not None:
            return mapped
        if chat_type == "private" and (owner or shared_dms):
            return self.general()
        kind = {"private": "dm", "thread": "thread"}.get(chat_type, "group")
        room = self.repo.ensure(chat_room_name(platform, kind, chat_id), "direct" if kind == "dm" else "project",
                                self.crew.handles)
        self.repo.map_chat(platform, chat_id, room.id)
        return room

    def map_chat(self, name: str, ref: str) -> Room:
        room = self.get(name)
        channel, chat_id = parse_chat_ref(ref)
        self.repo.map_chat(channel, chat_id, room.id)
        return room

    def unmap_chat(self, ref: str) -> bool:
        return self.repo.unmap_chat(*parse_chat_ref(ref))

    def _bot(self, mention: str) -> str:
        bot = self.crew.resolve(mention.lstrip("@"))
        if bot is None:
            raise RoomError(f"no bot named {mention!r} in this crew (bots: {', '.join(self.crew.handles)})")
        return bot.handle
