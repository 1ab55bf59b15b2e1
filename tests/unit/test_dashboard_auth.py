"""The dashboard's sign-in against its real aiohttp app on loopback: one-time links (used, expired, wrong),
the session cookie, CSRF and Origin on every state-changing request, and token rotation."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestServer

from nanofolks.services import Services
from nanofolks.web.auth import COOKIE, CSRF_HEADER
from tests.unit.dashboard import auth, browser_for, follow_link, origin_of, signed_in


async def test_a_login_link_works_once_and_sets_a_strict_httponly_cookie(server: TestServer, services: Services) -> None:
    token = auth(services).issue_login()
    async with browser_for(server) as browser:
        for _ in range(2):  # opening the link (a chat app's preview does) does not use it up
            async with browser.get(f"/login?token={token}") as response:
                assert response.status == 200 and "Set-Cookie" not in response.headers
                assert response.headers["Referrer-Policy"] == "same-origin"  # the token never leaves for another site
        async with browser.post("/login", data={"token": token}) as response:  # not from our page: no Origin
            assert response.status == 403 and "Set-Cookie" not in response.headers
        async with await follow_link(browser, server, token, redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/chat/general"
            cookie = response.headers["Set-Cookie"]
            assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with browser.get("/chat/general") as response:
            assert response.status == 200 and "#general" in await response.text()
    async with browser_for(server) as other:  # the same link, again
        async with await follow_link(other, server, token) as response:
            assert response.status == 401 and "used, expired or wrong" in await response.text()
        async with other.get("/chat/general") as response:
            assert response.status == 401


async def test_expired_and_wrong_links_and_cookies_are_refused(server: TestServer, services: Services) -> None:
    expired = auth(services).issue_login(now=time.time() - 16 * 60)  # issued 16 minutes ago, valid for 15
    async with browser_for(server) as browser:
        for token in (expired, "not-a-token"):
            async with await follow_link(browser, server, token) as response:
                assert response.status == 401
        async with browser.get("/login") as response:  # the login page itself is open, and says what to do
            assert response.status == 200 and "nanofolks dashboard" in await response.text()
        for path in ("/chat/general", "/board", "/tasks", "/activity", "/memory", "/settings", "/org",
                     "/chat/general/events", "/activity/events"):
            async with browser.get(path, cookies={COOKIE: "forged-session-id"}) as response:
                assert response.status == 401, path
        async with browser.get("/static/htmx.min.js") as response:  # the vendored library needs no session
            assert response.status == 200


async def test_state_changing_requests_need_our_origin_and_the_csrf_token(server: TestServer,
                                                                          services: Services) -> None:
    browser, csrf = await signed_in(server, services)
    origin = origin_of(server)
    form = {"name": "launch", "type": "project"}
    async with browser:
        refused = [({CSRF_HEADER: csrf}, "did not come from"),  # no Origin at all
                   ({CSRF_HEADER: csrf, "Origin": "http://evil.example"}, "did not come from"),
                   ({CSRF_HEADER: csrf, "Origin": f"http://127.0.0.1:{server.port + 1}"}, "did not come from"),
                   ({CSRF_HEADER: csrf, "Origin": "null"}, "did not come from"),
                   ({"Origin": origin}, "CSRF"),  # no token
                   ({"Origin": origin, CSRF_HEADER: "guessed"}, "CSRF")]
        for headers, why in refused:
            async with browser.post("/board/room", data=form, headers=headers) as response:
                assert response.status == 403 and why in await response.text(), headers
        assert services.rooms.repo.get("launch") is None  # nothing happened
        async with browser.post("/board/room", data={**form, "csrf": csrf}, headers={"Origin": origin}) as response:
            assert response.status == 200 and "room #launch created" in await response.text()  # the form field
        async with browser.post("/board/room", data={"name": "docs"}, headers={"Origin": origin, CSRF_HEADER: csrf}) as r:
            assert r.status == 200  # or the header htmx sends
        behind_tls = origin.replace("http://", "https://")  # a TLS proxy in front passes our Host on
        async with browser.post("/board/room", data={"name": "ops"}, headers={"Origin": behind_tls, CSRF_HEADER: csrf}) as r:
            assert r.status == 200
        assert all(services.rooms.repo.get(name) is not None for name in ("launch", "docs", "ops"))


async def test_rotating_the_token_signs_every_browser_out_and_kills_old_links(server: TestServer,
                                                                            services: Services) -> None:
    browser, _ = await signed_in(server, services)
    waiting = auth(services).issue_login()
    fresh, signed_out = auth(services).rotate()
    assert signed_out == 1
    async with browser:
        async with browser.get("/chat/general") as response:
            assert response.status == 401
        async with await follow_link(browser, server, waiting) as response:
            assert response.status == 401
        async with await follow_link(browser, server, fresh) as response:
            assert response.status == 200 and response.url.path == "/chat/general"


async def test_signing_out_ends_the_session(server: TestServer, services: Services) -> None:
    browser, csrf = await signed_in(server, services)
    origin = origin_of(server)
    async with browser:
        async with browser.post("/logout", data={"csrf": csrf}, headers={"Origin": origin}) as response:
            assert response.status == 200 and "signed out" in await response.text()
        async with browser.get("/board") as response:
            assert response.status == 401
