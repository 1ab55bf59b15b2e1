"""`nanofolks dashboard`: the dashboard's address and a one-time login link (a browser opens it when this
machine has a display); `nanofolks dashboard token rotate` signs every browser out."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from nanofolks.cli.common import console, err_console, fail, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.services import Services

app = typer.Typer(help="The web dashboard: print a one-time login link (and open it when there is a display).",
                  invoke_without_command=True)
token_app = typer.Typer(help="The dashboard's login token.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.callback()
def dashboard(ctx: typer.Context,
              open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the link in a browser when "
                                                "this machine has a display."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the dashboard's URL with a one-time login link."""
    if ctx.invoked_subcommand is not None:
        return
    services = open_services()
    where = _address(services)
    login = f"{where['url']}/login?token={_auth(services).issue_login()}"
    _show(where, login, as_json, "")
    if open_browser and not as_json and _has_display():
        import webbrowser

        webbrowser.open(login)


@token_app.command("rotate")
def rotate(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Drop every login link and session (all browsers are signed out) and print a fresh login link."""
    services = open_services()
    where = _address(services)
    token, signed_out = _auth(services).rotate()
    _show(where, f"{where['url']}/login?token={token}", as_json,
          f"token rotated: {signed_out} browser session(s) signed out, older links no longer work")


def _auth(services: Services) -> Any:
    from nanofolks.store.dashboard import DashboardAuthRepo
    from nanofolks.web.auth import Auth

    config = services.config.dashboard
    return Auth(DashboardAuthRepo(services.db), config.login_minutes, config.session_hours)


def _address(services: Services) -> dict[str, Any]:
    """Where the dashboard is: the address the running gateway recorded (it may have picked the port), else
    the configured one."""
    from nanofolks.channels.registry import CHANNELS
    from nanofolks.gateway.locks import channel_lock_path, lock_holder
    from nanofolks.store.channel_state import ChannelStateRepo
    from nanofolks.web.channel import ACCOUNT

    config = services.config.dashboard
    if not config.enabled:
        fail("the dashboard is off: `nanofolks config set dashboard.enabled true`, then restart the gateway")
    pid = lock_holder(channel_lock_path(CHANNELS["web"], services.config))
    beat = ChannelStateRepo(services.db).get("web", ACCOUNT, "status")
    recorded = json.loads(beat) if beat else {}
    if pid is not None and recorded.get("pid") == pid and recorded.get("username"):
        return {"url": recorded["username"], "running": True, "login_minutes": config.login_minutes}
    if config.port == 0:
        fail("the gateway is not running, and dashboard.port 0 means it picks a port when it starts: start "
             "`nanofolks gateway`, then run this again")
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    return {"url": f"http://{host}:{config.port}", "running": False, "login_minutes": config.login_minutes}


def _show(where: dict[str, Any], login: str, as_json: bool, note: str) -> None:
    if as_json:
        print_json({**where, "login": login})
        return
    if note:
        err_console.print(note, highlight=False)
    console.print(f"Dashboard: {where['url']}", highlight=False, soft_wrap=True)
    console.print(f"Sign in (the link works once, within {where['login_minutes']:g} minutes): {login}", highlight=False,
                  soft_wrap=True)
    if not where["running"]:
        err_console.print("the gateway is not running: start it with `nanofolks gateway`; the link works once it is up",
                          highlight=False, soft_wrap=True)


def _has_display() -> bool:
    """A browser can open here: a desktop session (not an SSH shell or a container), and a person at the
    terminal."""
    desktop = sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return desktop and sys.stdout.isatty()
