"""What every dashboard page works with: the `Dashboard` at `request.app[DASHBOARD]`, the signed-in session,
and server-sent events. Pages import this module, never `app.py` (which registers them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jinja2
from aiohttp import web

from nanofolks.web.auth import CSRF_HEADER, Auth, Session
from nanofolks.web.hub import Hub

if TYPE_CHECKING:
    from nanofolks.channels.messages import InboundMessage
    from nanofolks.services import Services

ACCOUNT = "dashboard"  # the web channel's account on its inbox and outbox rows
OWNER = "owner"  # who is signed in: the dashboard's allowFrom (config/schema.py DashboardConfig)

NAV = (("chat", "Chat"), ("board", "Board"), ("tasks", "Tasks"), ("activity", "Activity"), ("memory", "Memory"),
       ("settings", "Settings"), ("org", "Org chart"))


class PageChannel(Protocol):
    """What pages use of the web channel (web/channel.py)."""

    hub: Hub
    closing: bool  # pages following the crew (server-sent events) end when it is set

    async def receive(self, msg: InboundMessage) -> None: ...


@dataclass
class Dashboard:
    """What every page works with; `request.app[DASHBOARD]`."""

    services: Services
    channel: PageChannel
    auth: Auth
    templates: jinja2.Environment

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A store call off the event loop (the database thread)."""
        return await self.services.db.run(fn, *args)

    def render(self, request: web.Request, template: str, http_status: int = 200, **context: Any) -> web.Response:
        session: Session | None = request.get(SESSION)
        text = self.templates.get_template(template).render(
            nav=NAV, page=context.pop("page", ""), csrf=session.csrf if session else "",
            csrf_headers=json.dumps({CSRF_HEADER: session.csrf}) if session else "{}",
            team=self.services.crew.team_name or "Your crew", **context)
        return web.Response(text=text, status=http_status, content_type="text/html")

    def fragment(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)


DASHBOARD = web.AppKey("dashboard", Dashboard)
# The signed-in session, set by the guard (aiohttp before 3.12 has no typed request keys: a plain name then).
SESSION: Any = web.RequestKey("session", Session) if hasattr(web, "RequestKey") else "session"


# --- server-sent events ------------------------------------------------------------------------------------

async def open_events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


async def send_event(response: web.StreamResponse, event: str, html: str, event_id: str = "") -> None:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id else [])
    lines += [f"data: {line}" for line in html.splitlines() or [""]]
    await response.write(("\n".join(lines) + "\n\n").encode())


async def wait_news(queue: asyncio.Queue[Any], timeout: float) -> list[Any]:
    """What the hub published, waiting up to `timeout` for the first item (an empty list when nothing came)."""
    try:
        items = [await asyncio.wait_for(queue.get(), timeout)]
    except TimeoutError:
        return []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def keepalive(response: web.StreamResponse) -> None:
    """A comment on a quiet stream: writing is how a closed tab is noticed."""
    await response.write(b":\n\n")


@contextlib.contextmanager
def closed_quietly() -> Iterator[None]:
    """A page that went away ends its stream; nothing to report."""
    with contextlib.suppress(ConnectionResetError, ConnectionError):
        yield
