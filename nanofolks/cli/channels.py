"""`nanofolks channels ...`: which chat channels are configured, and linking WhatsApp by QR code."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import UserError, console, err_console, print_json

if TYPE_CHECKING:
    from nanofolks.config.schema import WhatsAppConfig

app = typer.Typer(help="Chat channels: list them, link WhatsApp.", no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each channel: enabled or not, and whether it has what it needs to start."""
    from nanofolks.channels.whatsapp_bridge import auth_dir, is_linked
    from nanofolks.config.loader import load_config

    channels = load_config().channels
    telegram, whatsapp = channels.telegram, channels.whatsapp
    linked = is_linked()
    rows = [
        {"channel": "telegram", "enabled": telegram.enabled, "ready": bool(telegram.token),
         "detail": "token set" if telegram.token else "no token (channels.telegram.token)",
         "allowFrom": len(telegram.allow_from)},
        {"channel": "whatsapp", "enabled": whatsapp.enabled,
         "ready": linked and bool(whatsapp.start_bridge or whatsapp.bridge_token),
         "detail": _whatsapp_detail(whatsapp, linked, str(auth_dir())),
         "allowFrom": len(whatsapp.allow_from)},
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        mark = "[green]enabled[/] " if row["enabled"] else "[dim]disabled[/]"
        console.print(f"{row['channel']:<9} {mark} {row['detail']}, allowFrom {row['allowFrom']}",
                      highlight=False, soft_wrap=True)


def _whatsapp_detail(whatsapp: WhatsAppConfig, linked: bool, folder: str) -> str:
    bridge = "bridge started by the gateway" if whatsapp.start_bridge else f"bridge at {whatsapp.bridge_url}"
    if not whatsapp.start_bridge and not whatsapp.bridge_token:
        bridge += " (no channels.whatsapp.bridgeToken)"
    link = "linked" if linked else "not linked: `nanofolks channels login whatsapp`"
    return f"{bridge}, {link} ({folder})"


@app.command("login")
def login(channel: str = typer.Argument(..., help="The channel to link: whatsapp.")) -> None:
    """Link WhatsApp as a device: shows a QR code to scan in WhatsApp > Settings > Linked devices."""
    from nanofolks.channels.base import ChannelError
    from nanofolks.channels.whatsapp import lock_key
    from nanofolks.channels.whatsapp_bridge import auth_dir, bridge_argv, bridge_dir, bridge_env
    from nanofolks.config.loader import load_config
    from nanofolks.gateway import lock_holder, lock_path

    if channel.lower() != "whatsapp":
        raise UserError(f"{channel!r} needs no login: only whatsapp links by QR code (telegram uses a bot token)")
    whatsapp = load_config().channels.whatsapp
    holder = lock_holder(lock_path("whatsapp", lock_key(whatsapp)))
    if holder is not None:  # two bridges on one credentials folder would fight over the session
        raise UserError(f"a gateway (pid {holder}) is running WhatsApp: stop it first, then log in")
    try:
        argv = bridge_argv(whatsapp, login=True)
    except ChannelError as exc:
        raise UserError(str(exc)) from exc
    err_console.print(f"starting the WhatsApp bridge; credentials go to {auth_dir()} (Ctrl-C to cancel)",
                      highlight=False)
    # The child writes the QR straight to this terminal; the token is not needed to log in.
    code = subprocess.run(argv, env=bridge_env(), cwd=bridge_dir(whatsapp), check=False).returncode
    if code != 0:
        raise UserError(f"the WhatsApp bridge exited with code {code} before the device was linked")
    console.print("[green]✓[/] WhatsApp linked. Set channels.whatsapp.enabled and start `nanofolks gateway`.",
                  highlight=False)
