"""Activity: a live timeline of everything (messages, tool runs, delegations, tasks, routines, heartbeats,
memory consolidation, errors; store/activity.py), filtered by room and bot, updating without a reload."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiohttp import web

from nanofolks.store.activity import ActivityRepo, Cursor
from nanofolks.web.page import DASHBOARD, Dashboard, closed_quietly, keepalive, open_events, send_event

SHOWN = 100
LOOK_EVERY = 1.0


def setup(app: web.Application) -> None:
    app.router.add_get("/activity", page)
    app.router.add_get("/activity/events", events)


async def _filters(dash: Dashboard, request: web.Request) -> tuple[str, int | None, str | None]:
    """The room (name and id) and who (a bot handle or a person) asked for; unknown rooms show nothing."""
    name = request.query.get("room", "")
    room_id = None
    if name:
        room = await dash.run(dash.services.rooms.repo.get, name)
        room_id = room.id if room else -1
    return name, room_id, request.query.get("bot") or None


async def page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    name, room_id, who = await _filters(dash, request)
    repo = ActivityRepo(dash.services.db)
    items = await dash.run(repo.timeline, room_id, who, None, SHOWN)
    cursor = Cursor().past(items)
    query = urlencode({k: v for k, v in (("room", name), ("bot", who or ""), ("after", cursor.text())) if v})
    rooms = await dash.run(dash.services.rooms.list)
    return dash.render(request, "activity.html", page="activity", items=items, rooms=rooms, room=name, bot=who or "",
                       bots=list(dash.services.crew.bots.values()), events_url=f"/activity/events?{query}")


async def events(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASHBOARD]
    _, room_id, who = await _filters(dash, request)
    repo = ActivityRepo(dash.services.db)
    cursor = Cursor.parse(request.headers.get("Last-Event-ID") or request.query.get("after", ""))
    response = await open_events(request)
    with closed_quietly():
        while not dash.channel.closing:
            new = await dash.run(repo.timeline, room_id, who, cursor, SHOWN)
            if new:
                cursor = cursor.past(new)
                html = "".join(dash.fragment("_activity_item.html", item=item) for item in new)
                await send_event(response, "activity", html, cursor.text())
            else:
                await keepalive(response)
            await asyncio.sleep(LOOK_EVERY)  # other processes write too (`chat -m`, `routines run`): a look
    return response
