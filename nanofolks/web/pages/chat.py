"""Chat: any room's full history (each bot's name and emoji), a message box with @bot completion, and the
room followed live: new messages from any chat, and a reply streamed as it is written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web

from nanofolks.channels.formatting import markdown_to_telegram_html
from nanofolks.channels.messages import InboundMessage
from nanofolks.rooms.rooms import RoomError
from nanofolks.store.messages import Message
from nanofolks.store.rooms import Room
from nanofolks.web.app import (
    DASHBOARD,
    Dashboard,
    closed_quietly,
    keepalive,
    open_events,
    send_event,
    wait_news,
)
from nanofolks.web.channel import ACCOUNT, OWNER

PAGE = 100  # messages shown at once; older ones a click away
LOOK_EVERY = 1.0  # seconds between looks for messages from other chats


@dataclass
class Shown:
    """A message as the page shows it."""

    id: int
    who: str  # "@leader (🦜 Captain Flint)", or the person and where they wrote from
    bot: bool
    html: str  # the Markdown as safe HTML (the renderer escapes everything else)
    at: float


def setup(app: web.Application) -> None:
    app.router.add_get("/chat/{room}", page)
    app.router.add_post("/chat/{room}", send)
    app.router.add_get("/chat/{room}/events", events)
    app.router.add_get("/chat/{room}/earlier", earlier)


def shown(dash: Dashboard, msg: Message) -> Shown:
    bot = dash.services.crew.bots.get(msg.author)
    if msg.role == "assistant":
        who = bot.label if bot else f"@{msg.author}"
    else:
        who = f"{msg.sender or 'user'} ({msg.platform})"
    return Shown(msg.id or 0, who, msg.role == "assistant", markdown_to_telegram_html(msg.content), msg.created_at)


async def _room(dash: Dashboard, request: web.Request) -> Room:
    try:
        return await dash.run(dash.services.rooms.get, request.match_info["room"])
    except RoomError as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc


async def page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    history = await dash.run(dash.services.messages.recent, room.id, PAGE)
    rooms = await dash.run(dash.services.rooms.list)
    crew = dash.services.crew
    mentions = [(b.handle, b.label) for b in crew.bots.values()] + [("all", "@all (everyone)")]
    return dash.render(request, "chat.html", page="chat", room=room, rooms=rooms,
                       messages=[shown(dash, m) for m in history], last=history[-1].id if history else 0,
                       first=history[0].id if len(history) == PAGE else 0, mentions=mentions,
                       client_id=uuid.uuid4().hex)


async def earlier(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    before = int(request.query.get("before", "0") or 0)
    older = await dash.run(dash.services.messages.recent, room.id, PAGE, ("chat",), before - 1)
    html = dash.fragment("_earlier.html", room=room, messages=[shown(dash, m) for m in older],
                         first=older[0].id if len(older) == PAGE else 0)
    return web.Response(text=html, content_type="text/html")


async def send(request: web.Request) -> web.Response:
    """Into the inbox as the web channel's message; the reply comes back through the room (events)."""
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    form = await request.post()
    text, client_id = str(form.get("text", "")).strip(), str(form.get("client_id", ""))
    problem = ""
    if not text:
        problem = "the message is empty"
    elif not client_id:
        problem = "the page is out of date: reload it"
    else:
        # The page's chat is this room's web chat: mapped, so the gateway's turn runs in this room.
        await dash.run(dash.services.rooms.repo.map_chat, "web", room.name, room.id)
        await dash.channel.receive(InboundMessage(
            platform="web", account=ACCOUNT, chat_id=room.name, message_id=client_id, text=text, sender_id=OWNER,
            sender_username=OWNER, chat_type="private"))
    # Until the turn stores it, the message shows as "sending" (the stored one replaces it, events below).
    html = dash.fragment("_compose.html", room=room, client_id=uuid.uuid4().hex if not problem else client_id,
                         text=text if problem else "", problem=problem, sent="" if problem else text)
    return web.Response(text=html, content_type="text/html", status=200)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `message` for each message stored in the room (from any chat), `stream` for
    replies being written, cleared when they are stored."""
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    last = int(request.headers.get("Last-Event-ID") or request.query.get("after") or 0)
    response = await open_events(request)
    writing: dict[tuple[str, str], str] = {}  # (message, bot) -> the reply so far
    with dash.channel.hub.subscribe(f"chat:{room.name}") as news, closed_quietly():
        while not dash.channel.closing:
            stored = await dash.run(dash.services.messages.after, room.id, last)
            for msg in stored:
                html = dash.fragment("_message.html", m=shown(dash, msg), clears_sending=msg.role == "user")
                await send_event(response, "message", html, str(msg.id))
                last = msg.id or last
            if any(m.role == "assistant" for m in stored) and writing:
                writing.clear()
                await send_event(response, "stream", "")
            pieces = [item for item in await wait_news(news, LOOK_EVERY) if item is not None]
            for turn, bot, piece in pieces:
                writing[(turn, bot)] = writing.get((turn, bot), "") + piece
            if pieces:
                labels = dash.services.crew.bots
                html = "".join(dash.fragment("_streaming.html", who=labels[b].label if b in labels else f"@{b}",
                                             text=t) for (_, b), t in writing.items())
                await send_event(response, "stream", html)
            elif not stored:
                await keepalive(response)
    return response
