"""The dashboard's aiohttp application: sign-in, the guard every request passes, and the pages registered
(nanofolks/web/pages/, one module each; what they share is web/page.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from nanofolks.store.dashboard import DashboardAuthRepo
from nanofolks.web.auth import COOKIE, CSRF_FIELD, CSRF_HEADER, Auth, csrf_ok, origin_ok
from nanofolks.web.page import DASHBOARD, SESSION, Dashboard, PageChannel

log = logging.getLogger("nanofolks.web")

if TYPE_CHECKING:
    from nanofolks.services import Services

HERE = Path(__file__).parent
# No inline script, nothing from elsewhere; htmx's own indicator styles are off (see base.html), so inline
# styles are not needed either. The login link's token never leaves for another site in a Referer ("same-origin":
# with "no-referrer" browsers send `Origin: null` on a form post, and the Origin check would refuse it).
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none';"
                               " form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def build_app(services: Services, channel: PageChannel) -> web.Application:
    from nanofolks.web.pages import activity, board, chat, memory, org, settings, tasks

    config = services.config.dashboard
    auth = Auth(DashboardAuthRepo(services.db), config.login_minutes, config.session_hours)
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                   trim_blocks=True, lstrip_blocks=True)
    templates.filters["when"] = _when
    app = web.Application(middlewares=[_guard], client_max_size=1024 ** 2)
    app[DASHBOARD] = Dashboard(services, channel, auth, templates)
    app.router.add_get("/login", login)
    app.router.add_post("/login", sign_in)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", home)
    app.router.add_static("/static/", HERE / "static")
    for page in (chat, board, tasks, activity, memory, settings, org):
        page.setup(app)
    app.on_response_prepare.append(_headers)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but the login link and static files needs a live session; every state-changing request
    also needs our Origin and the session's CSRF token (header or form field)."""
    if request.path == "/login" or request.path.startswith("/static/"):
        return await handler(request)
    dash = request.app[DASHBOARD]
    session = await dash.run(dash.auth.session, request.cookies.get(COOKIE))
    if session is None:
        return dash.render(request, "login.html", http_status=401, problem="")
    if request.method not in ("GET", "HEAD"):
        if not origin_ok(request.headers.get("Origin"), request.host):
            return web.Response(status=403, text="refused: this request did not come from the dashboard's own page")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = str((await request.post()).get(CSRF_FIELD, ""))
        if not csrf_ok(session, sent):
            return web.Response(status=403, text="refused: missing or wrong CSRF token; reload the page")
    request[SESSION] = session
    dash.services.crew.refresh(max_age=1.0)  # a bot hired or retired elsewhere (`bot create`) shows at once
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # a page's bug: logged (the activity timeline shows it), a plain page for the browser
        log.exception("dashboard: %s %s failed", request.method, request.path)
        return web.Response(status=500, text="something went wrong on the dashboard's side; the gateway log says what")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


async def login(request: web.Request) -> web.StreamResponse:
    """The printed link shows a Sign in button: opening the link spends nothing (a chat app's link preview
    cannot use it up); the button posts the token from our own page, which spends it for a session cookie."""
    dash = request.app[DASHBOARD]
    return dash.render(request, "login.html", problem="", token=request.query.get("token", ""))


async def sign_in(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASHBOARD]
    token = str((await request.post()).get("token", ""))
    if not origin_ok(request.headers.get("Origin"), request.host):  # nobody else's page signs you in
        return dash.render(request, "login.html", http_status=403, problem="refused: sign in from the link's own page")
    session = await dash.run(dash.auth.sign_in, token)
    if session is None:
        return dash.render(request, "login.html", http_status=401,
                           problem="this login link is used, expired or wrong: run `nanofolks dashboard` for a new one")
    response = _redirect("/chat/general")
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", path="/",
                        max_age=int(dash.auth.session_seconds), secure=request.secure)
    return response


async def home(request: web.Request) -> web.StreamResponse:
    return _redirect("/chat/general")


async def logout(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASHBOARD]
    await dash.run(dash.auth.sign_out, request[SESSION])
    response = dash.render(request, "login.html", problem="signed out")
    response.del_cookie(COOKIE, path="/")
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _when(at: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


