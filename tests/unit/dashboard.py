"""The dashboard's real aiohttp app on loopback for unit tests (loaded as a plugin by tests/conftest.py): an
onboarded home, the server, and a browser (cookies kept as a browser keeps them) that signs in through a
one-time link."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestServer

from nanofolks.config.loader import load_config
from nanofolks.services import Services
from nanofolks.store.dashboard import DashboardAuthRepo
from nanofolks.web.app import build_app
from nanofolks.web.auth import CSRF_HEADER, Auth
from nanofolks.web.channel import WebChannel
from tests.conftest import onboard


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    onboard(home, "openai/fake-model")
    opened = Services.open(load_config(), home / "nanofolks.db")
    yield opened
    opened.close()


@pytest.fixture
async def server(services: Services) -> AsyncIterator[TestServer]:
    channel = WebChannel(services.config.dashboard)
    channel.attach(services)
    async with TestServer(build_app(services, channel), host="127.0.0.1") as running:
        yield running


def browser_for(server: TestServer) -> ClientSession:
    """A client keeping cookies as a browser does (aiohttp's jar refuses IP hosts unless told)."""
    return ClientSession(base_url=str(server.make_url("/")), cookie_jar=CookieJar(unsafe=True))


def auth(services: Services) -> Auth:
    return Auth(DashboardAuthRepo(services.db), login_minutes=15, session_hours=1)


def origin_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def follow_link(browser: ClientSession, server: TestServer, token: str, redirects: bool = True) -> ClientResponse:
    """Open the printed link (a page with a Sign in button, which spends nothing) and press the button."""
    async with browser.get(f"/login?token={token}") as page:
        assert page.status == 200 and f'name="token" value="{token}"' in await page.text()
    return await browser.post("/login", data={"token": token}, headers={"Origin": origin_of(server)},
                              allow_redirects=redirects)


async def signed_in(server: TestServer, services: Services) -> tuple[ClientSession, str]:
    """A browser that followed a fresh login link, and its page's CSRF token."""
    browser = browser_for(server)
    async with await follow_link(browser, server, auth(services).issue_login()) as response:
        assert response.status == 200 and response.url.path == "/chat/general"
        page = await response.text()
    return browser, re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture
async def browser(server: TestServer, services: Services) -> AsyncIterator[ClientSession]:
    """A signed-in browser whose requests carry our Origin and the session's CSRF token."""
    session, csrf = await signed_in(server, services)
    session.headers.update({"Origin": origin_of(server), CSRF_HEADER: csrf})
    async with session:
        yield session
