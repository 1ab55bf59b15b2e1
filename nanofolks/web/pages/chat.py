"""Chat: any room's full history (each bot's name and emoji), a message box with @bot completion, and the
room followed live: new messages from any chat, and a reply streamed as it is written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nanofolks.channels.formatting import markdown_to_telegram_html
from nanofolks.channels.messages import InboundMessage
from nanofolks.rooms.rooms import RoomError
from nanofolks.store.messages import Message
from nanofolks.store.outbox import OutboxRepo, OutboxRow
from nanofolks.store.rooms import Room
from nanofolks.web.page import (
    ACCOUNT,
    DASHBOARD,
    OWNER,
    Dashboard,
    closed_quietly,
    keepalive,
    open_events,
    send_event,
    wait_news,
)

PAGE = 100  # messages shown at once; older ones a click away
LOOK_EVERY = 1.0  # seconds between looks for messages from other chats


@dataclass
class Shown:
    """A message as the page shows it."""

    key: str  # unique on the page: "m12" (a message of the room), "s5" (a reply sent to this page's chat)
    who: str  # "@leader (🦜 Captain Flint)", or the person and where they wrote from
    bot: bool
    html: str  # the Markdown as safe HTML (the renderer escapes everything else)
    at: float


@dataclass(frozen=True)
class Seen:
    """The newest room message and the newest reply sent to the page's chat the page has shown."""

    message: int = 0
    sent: int = 0

    def text(self) -> str:
        return f"{self.message}.{self.sent}"

    @classmethod
    def parse(cls, text: str) -> Seen:
        message, _, sent = text.partition(".")
        return cls(int(message), int(sent)) if message.isdigit() and sent.isdigit() else cls()


def setup(app: web.Application) -> None:
    app.router.add_get("/chat/{room}", page)
    app.router.add_post("/chat/{room}", send)
    app.router.add_get("/chat/{room}/events", events)
    app.router.add_get("/chat/{room}/earlier", earlier)


def _message(dash: Dashboard, msg: Message) -> Shown:
    bot = dash.services.crew.bots.get(msg.author)
    if msg.role == "assistant":
        who = bot.label if bot else f"@{msg.author}"
    else:
        who = f"{msg.sender or 'user'} ({msg.platform})"
    return Shown(f"m{msg.id}", who, msg.role == "assistant", markdown_to_telegram_html(msg.content), msg.created_at)


def _sent(dash: Dashboard, row: OutboxRow) -> Shown:
    """A reply as this page's chat received it, under the names of the bots that spoke in its turn."""
    crew = dash.services.crew
    spoke = [m.author for m in dash.services.messages.by_turn(f"web-inbox-{row.inbox_id}")
             if m.role == "assistant" and m.kind == "chat"] if row.inbox_id else []
    labels = [crew.bots[h].label if h in crew.bots else f"@{h}" for h in dict.fromkeys(spoke)]
    return Shown(f"s{row.id}", ", ".join(labels) or crew.team_name or "Nanofolks", True,
                 markdown_to_telegram_html(row.text), row.created_at)


def _is_reply_to_page(msg: Message) -> bool:
    return msg.role == "assistant" and msg.turn_id.startswith("web-inbox-")


def _history(dash: Dashboard, messages: list[Message], sent: list[OutboxRow]) -> list[Shown]:
    """The room as the page shows it: what every chat said, except the crew's replies to this page, shown as
    they were sent to it (with what the stored messages lack: hiring cards, notes, an apology)."""
    items = [_message(dash, m) for m in messages if not _is_reply_to_page(m)] + [_sent(dash, r) for r in sent]
    return sorted(items, key=lambda item: item.at)


def _page(dash: Dashboard, room: Room, before: int = 0, before_at: float | None = None) -> dict[str, Any]:
    """The newest PAGE messages (or those before message `before`) and the replies sent in that time."""
    messages = dash.services.messages.recent(room.id, PAGE, ("chat",), before - 1 if before else None)
    full = len(messages) == PAGE
    since = messages[0].created_at if full else 0.0
    sent = OutboxRepo(dash.services.db).sent_to("web", room.name, since=since, until=before_at, limit=10 * PAGE)
    seen = Seen(messages[-1].id or 0 if messages else 0, sent[-1].id or 0 if sent else 0)
    return {"messages": _history(dash, messages, sent), "seen": seen,
            "first": messages[0] if full else None}


def _news(dash: Dashboard, room: Room, seen: Seen) -> tuple[list[Shown], Seen, bool]:
    """What the room and the page's chat got since `seen`, the new `seen`, and whether a reply is among it."""
    messages = dash.services.messages.after(room.id, seen.message)
    sent = OutboxRepo(dash.services.db).sent_to("web", room.name, after_id=seen.sent)
    news = _history(dash, messages, sent)
    seen = Seen(messages[-1].id or 0 if messages else seen.message, sent[-1].id or 0 if sent else seen.sent)
    return news, seen, bool(sent) or any(m.role == "assistant" for m in messages)


async def _room(dash: Dashboard, request: web.Request) -> Room:
    try:
        return await dash.run(dash.services.rooms.get, request.match_info["room"])
    except RoomError as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc


async def page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    shown = await dash.run(_page, dash, room)
    rooms = await dash.run(dash.services.rooms.list)
    mentions = [(b.handle, b.label) for b in dash.services.crew.bots.values()] + [("all", "@all (everyone)")]
    return dash.render(request, "chat.html", page="chat", room=room, rooms=rooms, mentions=mentions,
                       client_id=uuid.uuid4().hex, **shown)


async def earlier(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    try:
        before, at = int(request.query.get("before", "")), float(request.query.get("at", ""))
    except ValueError:
        raise web.HTTPBadRequest(text="before must be a message id and at its time") from None
    shown = await dash.run(_page, dash, room, before, at)
    html = dash.fragment("_earlier.html", room=room, **shown)
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
    """Server-sent events: `message` for what the room and the page's chat got since the page was drawn (from
    any chat), `stream` for replies being written, cleared when they are sent."""
    dash = request.app[DASHBOARD]
    room = await _room(dash, request)
    seen = Seen.parse(request.headers.get("Last-Event-ID") or request.query.get("after", ""))
    response = await open_events(request)
    writing: dict[tuple[str, str], str] = {}  # (message, bot) -> the reply so far
    with dash.channel.hub.subscribe(f"chat:{room.name}") as news, closed_quietly():
        while not dash.channel.closing:
            shown, seen, replied = await dash.run(_news, dash, room, seen)
            if shown:
                html = "".join(dash.fragment("_message.html", m=m, clears_sending=not m.bot) for m in shown)
                await send_event(response, "message", html, seen.text())
            if replied and writing:
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
            elif not shown:
                await keepalive(response)
    return response
