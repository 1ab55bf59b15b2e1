"""The tool registry and the built-in tools, called directly with a real workspace and database."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nanofolks.agent.tools import Tool, ToolContext, ToolError, ToolRegistry, builtin_registry
from nanofolks.agent.tools.files import resolve
from nanofolks.agent.tools.web import html_to_text, is_forbidden
from nanofolks.orchestrator.turn import BotReply, Turn
from nanofolks.services import Services
from tests.conftest import onboard


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    onboard(home, "openai/fake-model", "http://127.0.0.1:9/v1")  # no model is called here
    services = Services.open(db_file=home / "nanofolks.db")
    services.workspace.mkdir(parents=True, exist_ok=True)
    yield services
    services.close()


def make_ctx(services: Services, bot: str = "coder", run_bot=None, turn: Turn | None = None) -> ToolContext:  # noqa: ANN001
    async def store(message) -> None:  # noqa: ANN001
        await services.db.run(services.messages.add, message)

    turn = turn or Turn(room=services.rooms.general(), text="hi", turn_id="t1")
    return ToolContext(config=services.config, workspace=services.workspace, crew=services.crew, turn=turn,
                       bot=bot, tasks=services.tasks, store=store, run_bot=run_bot,
                       db=services.db)


async def call(services: Services, name: str, args: dict, bot: str = "coder", run_bot=None,  # noqa: ANN001
               turn: Turn | None = None) -> str:
    registry = builtin_registry()
    crew_bot = services.crew.bots[bot]
    allowed = registry.for_bot(crew_bot, services.config, can_delegate=run_bot is not None)
    outcome = await registry.execute(name, args, allowed, make_ctx(services, bot, run_bot, turn))
    assert outcome.ok == (not outcome.text.startswith("error:"))
    return outcome.text


# --------------------------------------------------------------------------- registry and permissions


def test_role_cards_decide_who_gets_which_tool(services: Services) -> None:
    registry = builtin_registry()
    names = {h: [t.name for t in registry.for_bot(b, services.config, can_delegate=True)]
             for h, b in services.crew.bots.items()}
    assert names["coder"] == ["read_file", "write_file", "edit_file", "list_dir", "web_fetch", "room_task",
                              "work_log"]
    assert "delegate" in names["leader"] and "routine" in names["leader"] and "write_file" not in names["leader"]
    assert all("work_log" in tools for tools in names.values()) and "routine" not in names["coder"]
    assert "exec" not in names["auditor"]  # listed on its card, but exec is off by default
    services.config.tools.exec_enabled = True
    assert "exec" in [t.name for t in registry.for_bot(services.crew.bots["auditor"], services.config, True)]
    leader = services.crew.bots["leader"]
    assert "delegate" not in [t.name for t in registry.for_bot(leader, services.config, can_delegate=False)]
    for tool in registry.for_bot(leader, services.config, True):
        schema = tool.schema()
        assert schema["type"] == "function" and schema["function"]["parameters"]["type"] == "object"


async def test_a_bot_cannot_run_a_tool_it_was_not_given(services: Services) -> None:
    text = await call(services, "write_file", {"path": "a.txt", "content": "x"}, bot="leader")
    assert text.startswith("error: @leader may not use write_file")
    assert not (services.workspace / "a.txt").exists()
    assert (await call(services, "teleport", {})).startswith("error: there is no tool named 'teleport'")


@pytest.mark.parametrize(("args", "problem"), [
    ({}, "'path' is a required property"),
    ({"path": 3}, "path: 3 is not of type 'string'"),
    ({"path": "a", "mode": "x"}, "Additional properties are not allowed"),
    ({"_raw": "{path: "}, "were not valid JSON"),
])
async def test_bad_arguments_are_a_tool_error(services: Services, args: dict, problem: str) -> None:
    text = await call(services, "read_file", args)
    assert text.startswith("error:") and problem in text


async def test_a_crashing_tool_is_an_error_result_not_a_crash(services: Services) -> None:
    async def boom(ctx, args):  # noqa: ANN001, ANN202
        raise RuntimeError("disk on fire")

    async def refuse(ctx, args):  # noqa: ANN001, ANN202
        raise ToolError("not today")

    registry = ToolRegistry([Tool("boom", "explodes", {"type": "object"}, boom),
                             Tool("refuse", "refuses", {"type": "object"}, refuse)])
    allowed = [registry.get("boom"), registry.get("refuse")]
    outcome = await registry.execute("boom", {}, allowed, make_ctx(services))
    assert not outcome.ok and outcome.text == "error: boom failed: RuntimeError: disk on fire"
    assert (await registry.execute("refuse", {}, allowed, make_ctx(services))).text == "error: not today"
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool("boom", "again", {"type": "object"}, boom))
    with pytest.raises(ValueError, match="type object"):
        registry.register(Tool("bad", "no schema", {}, boom))


# --------------------------------------------------------------------------- files


async def test_write_read_list_edit(services: Services) -> None:
    assert await call(services, "write_file", {"path": "src/app.py", "content": "x = 1\ny = 2\n"}) == \
        "wrote 12 bytes to src/app.py"
    assert (services.workspace / "src" / "app.py").read_text() == "x = 1\ny = 2\n"
    assert await call(services, "read_file", {"path": "src/app.py"}) == "x = 1\ny = 2\n"
    assert await call(services, "list_dir", {"path": "src"}) == "app.py"
    assert "src/" in (await call(services, "list_dir", {})).splitlines()
    assert await call(services, "edit_file", {"path": "src/app.py", "old_text": "y = 2", "new_text": "y = 3"}) == \
        "edited src/app.py"
    assert (services.workspace / "src" / "app.py").read_text() == "x = 1\ny = 3\n"
    # An absolute path inside the workspace is fine.
    inside = str(services.workspace / "src" / "app.py")
    assert await call(services, "read_file", {"path": inside}) == "x = 1\ny = 3\n"


async def test_edit_file_needs_a_unique_exact_match(services: Services) -> None:
    (services.workspace / "a.txt").write_text("same same")
    missing = await call(services, "edit_file", {"path": "a.txt", "old_text": "other", "new_text": "x"})
    assert missing.startswith("error: old_text was not found in 'a.txt'")
    twice = await call(services, "edit_file", {"path": "a.txt", "old_text": "same", "new_text": "x"})
    assert twice.startswith("error: old_text occurs 2 times in 'a.txt'")
    assert (services.workspace / "a.txt").read_text() == "same same"  # nothing changed
    no_file = await call(services, "edit_file", {"path": "b.txt", "old_text": "a", "new_text": "b"})
    assert no_file.startswith("error: no file 'b.txt'")


async def test_read_errors_are_clear(services: Services) -> None:
    (services.workspace / "bin.dat").write_bytes(b"\x00\x01\x02")
    (services.workspace / "folder").mkdir()
    assert (await call(services, "read_file", {"path": "nope.md"})).startswith("error: no file 'nope.md'")
    assert (await call(services, "read_file", {"path": "folder"})).startswith("error: 'folder' is a directory")
    assert (await call(services, "read_file", {"path": "bin.dat"})) == "error: 'bin.dat' is a binary file"
    assert (await call(services, "list_dir", {"path": "nope"})).startswith("error: no directory 'nope'")


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "/etc/passwd", "~/outside.txt",
                                  "escape/outside.txt", "link.txt", "dangling.txt"])
async def test_paths_out_of_the_workspace_are_refused(services: Services, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "outside.txt").write_text("secret")
    ws = services.workspace
    (ws / "escape").symlink_to(outside, target_is_directory=True)  # a folder link pointing out
    (ws / "link.txt").symlink_to(outside / "outside.txt")  # a file link pointing out
    (ws / "dangling.txt").symlink_to(outside / "not-yet.txt")  # writing through it would create a file outside
    for name, args in [("read_file", {"path": path}), ("write_file", {"path": path, "content": "pwned"}),
                       ("edit_file", {"path": path, "old_text": "secret", "new_text": "pwned"}),
                       ("list_dir", {"path": path})]:
        text = await call(services, name, args)
        assert "is outside the crew's workspace" in text, (name, text)
    assert (outside / "outside.txt").read_text() == "secret"
    assert not (outside / "not-yet.txt").exists()


async def test_the_crew_cards_are_read_only_to_bots(services: Services) -> None:
    card = services.workspace / "crew" / "roles" / "coder.md"
    before = card.read_text()
    assert "tools:" in await call(services, "read_file", {"path": "crew/roles/coder.md"})
    for name, args in [("write_file", {"path": "crew/roles/coder.md", "content": "tools: exec"}),
                       ("edit_file", {"path": "./crew/roles/coder.md", "old_text": "tools:", "new_text": "x:"}),
                       ("write_file", {"path": "crew/new.md", "content": "x"})]:
        assert "is one of the crew's cards" in await call(services, name, args)
    assert card.read_text() == before and not (services.workspace / "crew" / "new.md").exists()


async def test_a_persons_direct_room_keeps_its_files_and_reads_no_one_elses(services: Services) -> None:
    """What a turn writes in bob's direct room goes under rooms/<his room>/, which turns of other people
    cannot read, list or change (nor reach through a link); the crew's shared files stay readable by all,
    and the owner reaches everything."""
    repo, ws = services.rooms.repo, services.workspace
    rooms = {name: repo.ensure(name, kind, ["leader"]) for name, kind in
             (("telegram-dm-222", "direct"), ("telegram-dm-333", "direct"), ("telegram-group-9", "open"))}
    bob, carol, group = (Turn(room=r, text="hi", turn_id=f"t-{r.name}", scope=(r.id,)) for r in rooms.values())
    (ws / "README.md").write_text("the crew's shared notes")
    (ws / "peek").symlink_to(ws / "rooms" / "telegram-dm-222", target_is_directory=True)

    assert await call(services, "write_file", {"path": "rooms/telegram-dm-222/plan.md", "content": "bob's plan"},
                      turn=bob) == "wrote 10 bytes to rooms/telegram-dm-222/plan.md"
    assert await call(services, "read_file", {"path": "README.md"}, turn=bob) == "the crew's shared notes"
    for name, args in [("write_file", {"path": "plan.md", "content": "x"}),
                       ("edit_file", {"path": "README.md", "old_text": "shared", "new_text": "mine"})]:
        text = await call(services, name, args, turn=bob)
        assert "in this direct room files are written under rooms/telegram-dm-222/" in text, text
    assert not (ws / "plan.md").exists() and (ws / "README.md").read_text() == "the crew's shared notes"

    for turn in (carol, group):
        for name, args in [("read_file", {"path": "rooms/telegram-dm-222/plan.md"}), ("read_file", {"path": "peek/plan.md"}),
                           ("list_dir", {"path": "rooms"}), ("list_dir", {"path": "rooms/telegram-dm-222"}),
                           ("edit_file", {"path": "rooms/telegram-dm-222/plan.md", "old_text": "bob", "new_text": "x"}),
                           ("write_file", {"path": "rooms/../rooms/telegram-dm-222/plan.md", "content": "x"})]:
            text = await call(services, name, args, turn=turn)
            assert f"holds other rooms' files; this room's own are in rooms/{turn.room.name}/" in text, (name, text)
        assert await call(services, "read_file", {"path": "README.md"}, turn=turn) == "the crew's shared notes"
    assert (ws / "rooms" / "telegram-dm-222" / "plan.md").read_text() == "bob's plan"
    assert (await call(services, "write_file", {"path": "group.md", "content": "ours"}, turn=group)).startswith("wrote")
    assert (await call(services, "write_file", {"path": "rooms/telegram-dm-333/a.md", "content": "c"},
                       turn=carol)).startswith("wrote")
    assert await call(services, "read_file", {"path": "rooms/telegram-dm-222/plan.md"}) == "bob's plan"  # the owner
    assert await call(services, "list_dir", {"path": "rooms"}) == "telegram-dm-222/\ntelegram-dm-333/"


def test_a_symlink_inside_the_workspace_is_fine(services: Services) -> None:
    ws = services.workspace
    (ws / "real").mkdir()
    (ws / "alias").symlink_to(ws / "real", target_is_directory=True)
    assert resolve(ws, "alias/x.txt") == (ws / "real" / "x.txt").resolve()
    with pytest.raises(ToolError, match="empty"):
        resolve(ws, "  ")


@pytest.mark.parametrize(("name", "args"), [
    ("read_file", {"path": "a" * 5_000}), ("write_file", {"path": "b/" * 2_500, "content": "x"}),
    ("list_dir", {"path": "c" * 300}), ("edit_file", {"path": "d" * 300, "old_text": "x", "new_text": "y"}),
])
async def test_odd_paths_fail_in_one_line_without_host_paths(services: Services, name: str, args: dict,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    text = await call(services, name, args)
    assert text.startswith("error: ") and "\n" not in text and len(text) < 400, text
    assert str(services.workspace.resolve()) not in text and str(Path.home()) not in text
    assert "Traceback" not in capsys.readouterr().err


async def test_a_failing_tool_tells_the_model_one_line_without_host_paths(services: Services,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    async def boom(ctx: ToolContext, args: dict) -> str:
        raise FileNotFoundError(2, "No such file or directory", str(ctx.workspace.resolve() / "x" / "y.txt"))

    registry = ToolRegistry([Tool("boom", "fails", {"type": "object", "properties": {}}, boom)])
    outcome = await registry.execute("boom", {}, [registry.get("boom")], make_ctx(services))
    assert outcome.text == "error: boom failed: No such file or directory: x/y.txt"
    assert "Traceback" not in capsys.readouterr().err


# --------------------------------------------------------------------------- exec


async def test_exec_is_off_by_default(services: Services) -> None:
    text = await call(services, "exec", {"command": "touch ran.txt"}, bot="auditor")
    assert text.startswith("error: running commands is turned off") and "execEnabled" in text
    assert not (services.workspace / "ran.txt").exists()


async def test_exec_runs_in_the_workspace_without_secrets(services: Services,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    services.config.tools.exec_enabled = True
    monkeypatch.setenv("SOME_API_KEY", "sk-secret")
    text = await call(services, "exec", {"command": "pwd; echo ${SOME_API_KEY:-no-key}; echo oops >&2; exit 3"},
                      bot="auditor")
    lines = text.splitlines()
    assert lines[0] == "exit code 3"
    assert Path(lines[1]).resolve() == services.workspace.resolve()
    assert lines[2:] == ["no-key", "oops"]


async def test_exec_timeout_stops_the_command(services: Services) -> None:
    services.config.tools.exec_enabled = True
    services.config.tools.exec_timeout = 0.5
    text = await call(services, "exec", {"command": "sleep 30 & sleep 30; touch late.txt"}, bot="auditor")
    assert text.startswith("error: the command timed out after 0.5 s and was stopped")
    assert not (services.workspace / "late.txt").exists()


async def test_exec_output_is_truncated(services: Services) -> None:
    services.config.tools.exec_enabled = True
    text = await call(services, "exec", {"command": "python3 -c \"print('a' * 50000 + 'END')\""}, bot="auditor")
    assert len(text) < 11_000 and "bytes cut" in text and text.rstrip().endswith("END")


async def test_endless_output_is_stopped_at_the_cap_without_filling_memory(services: Services) -> None:
    import resource

    services.config.tools.exec_enabled = True
    services.config.tools.exec_timeout = 3
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with asyncio.timeout(20):  # it used to never return (and grew to gigabytes)
        text = await call(services, "exec", {"command": "yes"}, bot="auditor")
    assert text.startswith("error: the command wrote more than 1024 KB and was stopped")
    assert "y\ny\n" in text and len(text) < 11_000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: bounded


async def test_a_timeout_with_an_unread_pipe_returns_and_kills_the_group(services: Services) -> None:
    services.config.tools.exec_enabled = True
    services.config.tools.exec_timeout = 1
    # A child in the background keeps writing; the shell waits on a sleep: the deadline must stop both.
    command = "(while true; do echo tick; sleep 0.01; done) & echo $! > child.pid; sleep 60"
    async with asyncio.timeout(20):
        text = await call(services, "exec", {"command": command}, bot="auditor")
    assert text.startswith("error: the command timed out after 1 s") and "tick" in text
    child = Path(f"/proc/{int((services.workspace / 'child.pid').read_text())}/stat")
    await asyncio.sleep(0.2)
    assert not child.exists() or child.read_text().split(") ")[1][0] in "ZX"  # gone, or a zombie awaiting init


async def test_a_command_that_timed_out_is_not_run_again_in_the_same_turn(services: Services) -> None:
    services.config.tools.exec_enabled = True
    services.config.tools.exec_timeout = 0.5
    first = await call(services, "exec", {"command": "echo x >> runs.txt; sleep 30"}, bot="auditor")
    assert "timed out" in first
    again = await call(services, "exec", {"command": "echo x >> runs.txt; sleep 30"}, bot="auditor")  # turn t1 re-run
    assert again.startswith("error: this exact command timed out earlier in this turn")
    assert (services.workspace / "runs.txt").read_text() == "x\n"
    ok = await call(services, "exec", {"command": "echo fine"}, bot="auditor")
    assert ok == "exit code 0\nfine"


# --------------------------------------------------------------------------- web_fetch


class _Site(BaseHTTPRequestHandler):
    hosts: list[str] = []  # the Host header of every request served

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        _Site.hosts.append(self.headers.get("Host", ""))
        routes = {
            "/page": (200, "text/html; charset=utf-8",
                      "<html><head><title>Treasure</title><style>p{}</style></head><body><h1>Map</h1>"
                      "<script>alert('x')</script><p>X marks&nbsp;the <b>spot</b>.</p><ul><li>one</li></ul>"
                      "</body></html>"),
            "/big": (200, "text/plain", "z" * 5000),
            "/missing": (404, "text/plain", "no such page"),
            "/image": (200, "image/png", "\x89PNG"),
            "/hop": (302, "text/plain", ""),
        }
        status, ctype, body = routes.get(self.path, (404, "text/plain", "?"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.path == "/hop":
            self.send_header("Location", "/page")
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_web_fetch_refuses_loopback_and_other_schemes(services: Services, site: str) -> None:
    refused = await call(services, "web_fetch", {"url": site + "/page"})
    assert refused.startswith("error: 127.0.0.1 is 127.0.0.1, a loopback, private or link-local address")
    port = site.rsplit(":", 1)[1]
    assert "loopback, private" in await call(services, "web_fetch", {"url": f"http://localhost:{port}/page"})
    assert (await call(services, "web_fetch", {"url": "file:///etc/passwd"})).startswith(
        "error: only http and https URLs")
    assert (await call(services, "web_fetch", {"url": "http:///nohost"})).startswith("error:")


async def test_web_fetch_reads_pages_when_private_addresses_are_allowed(services: Services, site: str) -> None:
    services.config.tools.web_fetch_allow_private = True
    text = await call(services, "web_fetch", {"url": site + "/page"})
    assert text.startswith(site + "/page (HTTP 200, text/html)")
    assert "# Treasure" in text and "X marks the spot." in text and "- one" in text
    assert "alert" not in text and "<p>" not in text and "p{}" not in text
    hopped = await call(services, "web_fetch", {"url": site + "/hop"})
    assert hopped.startswith(site + "/page (HTTP 200") and "X marks the spot." in hopped
    services.config.tools.web_fetch_max_bytes = 1000
    big = await call(services, "web_fetch", {"url": site + "/big"})
    assert big.count("z") == 1000 and big.endswith("[... cut at 1000 bytes]")
    assert (await call(services, "web_fetch", {"url": site + "/missing"})).startswith("error: HTTP 404")
    assert "is not text (image/png" in await call(services, "web_fetch", {"url": site + "/image"})


@pytest.mark.parametrize(("address", "forbidden"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.5", True), ("172.16.0.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("::1", True), ("fe80::1", True), ("fd00::1", True), ("::ffff:127.0.0.1", True),
    ("::127.0.0.1", True), ("::10.0.0.1", True), ("2002:7f00:1::", True), ("64:ff9b::a00:1", True),
    ("8.8.8.8", False), ("2606:4700:4700::1111", False), ("::8.8.8.8", False),
])
def test_which_addresses_web_fetch_refuses(address: str, forbidden: bool) -> None:
    assert is_forbidden(ipaddress.ip_address(address)) is forbidden


async def test_web_fetch_refuses_ipv6_literals_that_embed_loopback(services: Services, site: str) -> None:
    port = site.rsplit(":", 1)[1]
    for literal in ("[::127.0.0.1]", "[::ffff:127.0.0.1]", "[2002:7f00:1::]"):
        refused = await call(services, "web_fetch", {"url": f"http://{literal}:{port}/page"})
        assert "loopback, private or link-local" in refused, (literal, refused)


async def test_web_fetch_connects_to_the_address_it_checked(services: Services, site: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebinding DNS: public for the check, loopback a moment later. The fetch must never reach loopback."""
    import socket

    real, port, answers = socket.getaddrinfo, int(site.rsplit(":", 1)[1]), []

    def rebinding_dns(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if (host.decode() if isinstance(host, bytes) else host) != "rebind.test":
            return real(host, *args, **kwargs)
        answers.append(host)
        address = "93.184.216.34" if len(answers) == 1 else "127.0.0.1"  # the second answer points home
        family = socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    services.config.tools.web_fetch_timeout = 1.5
    _Site.hosts.clear()
    text = await call(services, "web_fetch", {"url": f"http://rebind.test:{port}/page"})
    assert text.startswith("error:") and "Treasure" not in text
    assert _Site.hosts == [] and answers == ["rebind.test"]  # resolved once; loopback never reached


async def test_a_pinned_request_keeps_the_host_header(site: str) -> None:
    import httpx

    from nanofolks.agent.tools.web import _pinned_request

    port = site.rsplit(":", 1)[1]
    _Site.hosts.clear()
    async with httpx.AsyncClient() as client:
        response = await client.send(_pinned_request(client, f"http://crew.test:{port}/page", "127.0.0.1"))
    assert response.status_code == 200 and "Treasure" in response.text
    assert _Site.hosts == [f"crew.test:{port}"]
    tls = _pinned_request(httpx.AsyncClient(), "https://bücher.example:8443/a", "93.184.216.34")
    assert (tls.url.host, tls.headers["Host"]) == ("93.184.216.34", "xn--bcher-kva.example:8443")
    assert tls.extensions["sni_hostname"] == "xn--bcher-kva.example"


def test_html_to_text_without_closing_head() -> None:
    assert html_to_text("<html><head><title>T</title><body><p>Hello <i>there</i></p>") == "# T\n\nHello there"


# --------------------------------------------------------------------------- room_task and delegate


async def test_room_task_create_list_status_handoff(services: Services) -> None:
    created = await call(services, "room_task", {"action": "create", "title": "Fix the mast"})
    assert created == "created #1 [todo] Fix the mast (@coder, medium)"
    await call(services, "room_task", {"action": "create", "title": "Scout", "owner": "researcher",
                                       "priority": "high"})
    listed = await call(services, "room_task", {"action": "list"})
    assert listed.splitlines() == ["#1 [todo] Fix the mast (@coder, medium)", "#2 [todo] Scout (@researcher, high)"]
    assert (await call(services, "room_task", {"action": "status", "number": 1, "status": "done"})).startswith(
        "updated #1 [done]")
    no_reason = await call(services, "room_task", {"action": "handoff", "number": 2, "owner": "auditor"})
    assert no_reason == "error: a handoff needs a reason (--reason)"
    handed = await call(services, "room_task", {"action": "handoff", "number": 2, "owner": "auditor",
                                                "reason": "needs checking"})
    assert handed == "handed off #2 [todo] Scout (@auditor, high)"
    history = services.tasks.history(services.rooms.general(), 2)
    assert [(e.actor, e.kind) for e in history] == [("coder", "created"), ("coder", "handoff")]
    assert "is not one of" in await call(services, "room_task", {"action": "status", "number": 1, "status": "gone"})
    assert (await call(services, "room_task", {"action": "status", "number": 9, "status": "done"})) == \
        "error: no task 9 in room 'general'"


async def test_delegate_tracks_the_task_and_returns_the_answer(services: Services) -> None:
    heard: list[tuple[str, str]] = []

    async def specialist(handle: str, task: str) -> BotReply:
        heard.append((handle, task))
        return BotReply(handle, "Charted the reef.") if handle == "researcher" else BotReply(handle, "", False, "down")

    text = await call(services, "delegate", {"bot": "@researcher", "task": "Chart the reef"}, "leader", specialist)
    assert heard == [("researcher", "Chart the reef")]
    assert text.startswith("@researcher (") and text.endswith("finished task #1:\n\nCharted the reef.")
    room = services.rooms.general()
    task = services.tasks.get(room, 1)
    assert (task.owner, task.status) == ("researcher", "done")
    events = [(e.actor, e.kind, e.to_value) for e in services.tasks.history(room, 1)]
    assert events == [("leader", "created", "researcher"), ("leader", "status", "in_progress"),
                      ("researcher", "status", "done")]
    stored = services.messages.recent(room.id, 5, kinds=("consult",))
    assert [(m.author, m.content, m.meta) for m in stored] == [
        ("researcher", "Charted the reef.", {"task": 1, "delegated_by": "leader"})]

    failed = await call(services, "delegate", {"bot": "coder", "task": "Fix it"}, "leader", specialist)
    assert failed == "error: @coder could not do task #2 (down); it is marked blocked"
    assert services.tasks.get(room, 2).status == "blocked"

    assert "cannot delegate to yourself" in await call(services, "delegate", {"bot": "leader", "task": "x"},
                                                       "leader", specialist)
    assert "no bot named 'kraken'" in await call(services, "delegate", {"bot": "kraken", "task": "x"},
                                                 "leader", specialist)
    # Without a way to run bots (a specialist's own run), delegate refuses: no bot-to-bot chains.
    assert "cannot be passed on" in await call(services, "delegate", {"bot": "coder", "task": "x"}, "leader")
    assert len(services.tasks.list(room)) == 2



async def test_a_tool_gets_the_secret_only_as_it_runs_and_its_output_is_screened(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from nanofolks.secrets import keeper as keeper_module
    from nanofolks.secrets.keeper import shared_keeper

    monkeypatch.setenv("NANOFOLKS_VAULT_PASSPHRASE", "tool test passphrase")
    keeper_module._shared.clear()
    keeper = shared_keeper()
    keeper.put("deploy_token", "dep-7f3a9c2e51b8")
    services.config.tools.exec_enabled = True
    registry = builtin_registry()
    allowed = registry.for_bot(services.crew.bots["coder"], services.config, can_delegate=False)
    ctx = make_ctx(services)
    ctx.keeper = keeper
    new_key = "ghp_" + "Q7x" * 12
    command = f"printf %s '{{{{deploy_token}}}}' > used.txt; cat used.txt; echo; echo found {new_key}"
    outcome = await registry.execute("exec", {"command": command}, allowed, ctx)
    assert (services.workspace / "used.txt").read_text() == "dep-7f3a9c2e51b8"  # the command had the value
    assert outcome.text == "exit code 0\n{{deploy_token}}\nfound {{github_token}}"  # the output never does
    assert keeper.vault.get("github_token") == new_key  # a new secret in an output is kept too
    missing = await registry.execute("exec", {"command": "echo {{nope}}"}, allowed, ctx)
    assert missing.text.startswith("error: no secret named 'nope'")
    read = await registry.execute("read_file", {"path": "used.txt"}, allowed, ctx)
    assert "dep-7f3a9c2e51b8" not in read.text and "{{deploy_token}}" in read.text


async def test_exec_gives_secrets_through_the_environment_never_the_command_line(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ps` (any local user) must not show a {{secret}} an exec command uses, wherever it is quoted."""
    from nanofolks.secrets import keeper as keeper_module
    from nanofolks.secrets.keeper import shared_keeper

    monkeypatch.setenv("NANOFOLKS_VAULT_PASSPHRASE", "exec env test passphrase")
    keeper_module._shared.clear()
    keeper = shared_keeper()
    keeper.put("deploy_token", "dep 7f3a 'q\"uoted' $HOME")  # spaces, quotes and a $: passed as they are
    services.config.tools.exec_enabled = True
    registry = builtin_registry()
    allowed = registry.for_bot(services.crew.bots["coder"], services.config, can_delegate=False)
    ctx = make_ctx(services)
    ctx.keeper = keeper
    # Each form waits a moment, so that the processes' command lines can be read while they run.
    probe = "grep -l 7f3[a] /proc/[0-9]*/cmdline 2>/dev/null | wc -l"  # [a]: the probe does not find itself
    command = (f"printf %s {{{{deploy_token}}}} > bare.txt; printf %s '{{{{deploy_token}}}}' > single.txt; "
               f'printf %s "token={{{{deploy_token}}}}" > double.txt; sh -c \'sleep 0.2\' & {probe}; wait')
    outcome = await registry.execute("exec", {"command": command}, allowed, ctx)
    assert outcome.ok and outcome.text == "exit code 0\n0", outcome.text  # no command line shows it
    value = "dep 7f3a 'q\"uoted' $HOME"
    assert (services.workspace / "bare.txt").read_text() == value
    assert (services.workspace / "single.txt").read_text() == value
    assert (services.workspace / "double.txt").read_text() == f"token={value}"
