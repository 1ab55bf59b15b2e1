"""The chat commands the gateway answers itself, without a turn: `/rooms`, `/room NAME`, `/help`.

COMMANDS is the one list: parsing, answering and the platforms' command menus all read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nanofolks.rooms.rooms import RoomError, Rooms
from nanofolks.store.inbox import InboxRow

HELP = ("Talk to the crew by writing a message. `@coder` or `@all` picks who answers.\n"
        "/rooms lists the rooms, `/room NAME` moves this chat to a room.")


@dataclass(frozen=True)
class ChatCommand:
    name: str
    answer: Callable[[Rooms, InboxRow, str], str]  # (rooms, the message, the text after the name) -> reply
    menu: str = ""  # its line in the app's command menu; empty: answered but not listed


def _help(rooms: Rooms, row: InboxRow, arg: str) -> str:
    return HELP


def _list_rooms(rooms: Rooms, row: InboxRow, arg: str) -> str:
    current = rooms.for_chat(row.platform, row.chat_id)
    lines = [f"{'→' if r.id == current.id else '•'} #{r.name} ({r.type})" for r in rooms.list()]
    return "Rooms:\n" + "\n".join(lines)


def _move_chat(rooms: Rooms, row: InboxRow, arg: str) -> str:
    if not arg:
        return f"This chat talks in #{rooms.for_chat(row.platform, row.chat_id).name}. `/room NAME` moves it."
    try:
        room = rooms.map_chat(arg.lstrip("#"), f"{row.platform}:{row.chat_id}")
    except RoomError as exc:
        return str(exc)
    return f"This chat now talks in #{room.name}."


COMMANDS = [
    ChatCommand("rooms", _list_rooms, "List the rooms"),
    ChatCommand("room", _move_chat, "Move this chat to a room: /room NAME"),
    ChatCommand("help", _help, "How to talk to the crew"),
    ChatCommand("start", _help),  # what Telegram sends when somebody opens the bot
]
_BY_NAME = {command.name: command for command in COMMANDS}


def parse_command(text: str) -> tuple[ChatCommand, str] | None:
    """`/room NAME` -> (the room command, "NAME"); None for text that is not one of the commands."""
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    command = _BY_NAME.get(head.lower())
    return (command, rest.strip()) if command else None


def menu() -> list[tuple[str, str]]:
    """(name, description) of each command the platforms list in their menu."""
    return [(command.name, command.menu) for command in COMMANDS if command.menu]
