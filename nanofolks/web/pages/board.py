"""Board: rooms as channels, with their members (bots and people) and the chats mapped to them; create a
room, invite a bot, map a chat. The rules are the rooms module's, as for `nanofolks room`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from nanofolks.rooms.rooms import ROOM_TYPES, RoomError
from nanofolks.web.page import DASHBOARD, Dashboard


def setup(app: web.Application) -> None:
    app.router.add_get("/board", page)
    app.router.add_post("/board/room", create_room)
    app.router.add_post("/board/invite", invite)
    app.router.add_post("/board/map", map_chat)


def _overview(dash: Dashboard) -> list[dict[str, Any]]:
    rooms = dash.services.rooms
    crew = dash.services.crew
    return [{"room": r, "bots": [crew.bots[h].label if h in crew.bots else f"@{h}" for h in r.members],
             "people": rooms.repo.people(r.id), "chats": [f"{c}:{chat}" for c, chat, _ in rooms.repo.mappings(r.id)]}
            for r in rooms.list()]


async def page(request: web.Request, problem: str = "", done: str = "") -> web.Response:
    dash = request.app[DASHBOARD]
    rooms = await dash.run(_overview, dash)
    return dash.render(request, "board.html", page="board", rooms=rooms, types=ROOM_TYPES,
                       bots=list(dash.services.crew.bots.values()), problem=problem, done=done)


async def _act(request: web.Request, action: Callable[[dict[str, str]], str]) -> web.Response:
    dash = request.app[DASHBOARD]
    form = {k: str(v).strip() for k, v in (await request.post()).items()}
    try:
        done = await dash.run(action, form)
    except RoomError as exc:
        return await page(request, problem=str(exc))
    return await page(request, done=done)


async def create_room(request: web.Request) -> web.Response:
    rooms = request.app[DASHBOARD].services.rooms

    def create(form: dict[str, str]) -> str:
        room = rooms.create(form.get("name", ""), form.get("type", "project"))
        return f"room #{room.name} created"

    return await _act(request, create)


async def invite(request: web.Request) -> web.Response:
    rooms = request.app[DASHBOARD].services.rooms

    def add(form: dict[str, str]) -> str:
        room = rooms.invite(form.get("room", ""), form.get("bot", ""))
        return f"@{form.get('bot', '').lstrip('@')} is in #{room.name}"

    return await _act(request, add)


async def map_chat(request: web.Request) -> web.Response:
    rooms = request.app[DASHBOARD].services.rooms

    def mapped(form: dict[str, str]) -> str:
        room = rooms.map_chat(form.get("room", ""), form.get("chat", ""))
        return f"{form.get('chat')} now talks in #{room.name}"

    return await _act(request, mapped)
