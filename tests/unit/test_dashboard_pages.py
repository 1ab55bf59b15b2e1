"""Dashboard pages refusing bad input in one plain line (nothing changed), and the web channel's server:
a busy port is a one-line channel error; listening beyond loopback says TLS is missing."""

from __future__ import annotations

import json
import logging
import re
import socket
from html import unescape

import pytest
from aiohttp import ClientSession

from nanofolks.channels.base import ChannelError
from nanofolks.config.paths import config_path
from nanofolks.config.schema import DashboardConfig
from nanofolks.services import Services
from nanofolks.web.channel import WebChannel


async def test_an_empty_message_is_refused_and_nothing_reaches_the_inbox(browser: ClientSession,
                                                                        services: Services) -> None:
    async with browser.post("/chat/general", data={"text": "   ", "client_id": "c1"}) as response:
        assert response.status == 200 and "the message is empty" in unescape(await response.text())
    async with browser.post("/chat/nowhere", data={"text": "hi", "client_id": "c2"}) as response:
        assert response.status == 404 and "no room named 'nowhere'" in unescape(await response.text())
    assert services.db.query("SELECT COUNT(*) FROM inbox")[0][0] == 0


async def test_tasks_and_board_say_what_is_wrong(browser: ClientSession, services: Services) -> None:
    async with browser.post("/tasks/general/new", data={"title": "Chart", "owner": "nobody"}) as response:
        assert "no bot named 'nobody'" in unescape(await response.text())
    async with browser.post("/tasks/general/new", data={"title": "Chart", "owner": "coder"}) as response:
        assert "task #1 created for @coder" in unescape(await response.text())
    async with browser.post("/tasks/general/1/move", data={"status": "finished"}) as response:
        assert "invalid status 'finished'" in unescape(await response.text())
    async with browser.post("/tasks/general/1/handoff", data={"owner": "researcher", "reason": ""}) as response:
        assert "a handoff needs a reason" in unescape(await response.text())
    async with browser.post("/tasks/general/9/move", data={"status": "done"}) as response:
        assert "no task 9 in room 'general'" in unescape(await response.text())
    assert services.tasks.get(services.rooms.get("general"), 1).status == "todo"
    async with browser.post("/board/map", data={"room": "general", "chat": "not-a-chat"}) as response:
        assert "invalid chat 'not-a-chat'" in unescape(await response.text())
    async with browser.post("/board/invite", data={"room": "general", "bot": "ghost"}) as response:
        assert "no bot named 'ghost'" in unescape(await response.text())


async def test_settings_use_the_config_schema_and_keep_secrets_write_only(browser: ClientSession,
                                                                        services: Services) -> None:
    before = config_path().read_text()
    refused = {("routing.enabled", "sometimes"): "routing.enabled",
               ("workspace", "/tmp/elsewhere"): "not a setting of this page",
               ("providers.openai.apiKey", " "): "a secret is set or replaced, never shown"}
    for (key, value), why in refused.items():
        async with browser.post("/settings", data={"key": key, "value": value}) as response:
            assert why in unescape(await response.text()), key
    assert config_path().read_text() == before  # nothing written
    async with browser.post("/settings", data={"key": "agents.defaults.model", "value": "openai/gpt-4o-mini"}) as r:
        assert 'agents.defaults.model = "openai/gpt-4o-mini"' in unescape(await r.text())
    assert json.loads(config_path().read_text())["agents"]["defaults"]["model"] == "openai/gpt-4o-mini"
    async with browser.get("/settings") as response:
        page = await response.text()
    assert "sk-test" not in page  # the key onboarding wrote is there, and never shown
    assert re.search(r'aria-label="providers.openai.apiKey"', page)


async def test_a_busy_port_is_one_line_and_beyond_loopback_warns(services: Services,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = WebChannel(DashboardConfig(port=port))
        busy.attach(services)
        with pytest.raises(ChannelError, match=f"dashboard: cannot listen on 127.0.0.1:{port}"):
            await busy.start(_ignore)
    wide = WebChannel(DashboardConfig(host="0.0.0.0", port=0))
    wide.attach(services)
    with caplog.at_level(logging.WARNING, logger="nanofolks.web"):
        await wide.start(_ignore)
    try:
        assert wide.username.startswith("http://127.0.0.1:") and wide.state == "running"
        assert any("without TLS" in r.getMessage() for r in caplog.records)
    finally:
        await wide.stop()
    assert wide.state == "stopped"


async def _ignore(message: object) -> None:
    raise AssertionError("no message expected")


async def test_forget_and_restore_from_the_memory_page(browser: ClientSession, services: Services) -> None:
    entry = services.memory.add("The reef north of Tortuga is charted", kind="note")
    async with browser.post("/memory/forget", data={"ref": f"entry:{entry.id}"}) as response:
        assert f"entry {entry.id} archived" in unescape(await response.text())
    [archived] = services.memory.archive.list()
    assert archived["text"] == "The reef north of Tortuga is charted"
    async with browser.post("/memory/forget", data={"ref": "nonsense"}) as response:
        assert "not a memory id: 'nonsense'" in unescape(await response.text())
    async with browser.post("/memory/restore", data={"archive_id": "x"}) as response:
        assert "not an archive id: 'x'" in unescape(await response.text())
    async with browser.post("/memory/restore", data={"archive_id": str(archived["id"])}) as response:
        assert "restored as entry" in unescape(await response.text())
    assert services.memory.archive.list() == []


async def test_the_chat_page_shows_the_newest_messages_and_pages_back(browser: ClientSession,
                                                                      services: Services) -> None:
    from nanofolks.store.messages import Message

    room = services.rooms.get("general")
    services.messages.add_many([Message(room.id, "user", "user", f"message number {n}", sender="alice",
                                        created_at=1000.0 + n) for n in range(105)])
    async with browser.get("/chat/general") as response:
        page = await response.text()
    assert "message number 104" in page and "message number 5<" in page and "message number 4<" not in page
    first = re.search(r'hx-get="(/chat/general/earlier\?before=\d+&amp;at=[\d.]+)"', page).group(1)
    async with browser.get(unescape(first)) as response:
        older = await response.text()
    assert "message number 0<" in older and "message number 4<" in older and "message number 5<" not in older
    assert "Earlier messages" not in older  # the start of the room
