"""`nanofolks channels ...`: which chat channels are configured, and linking WhatsApp by QR code."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import UserError, console, err_console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.config.schema import WhatsAppConfig

app = typer.Typer(help="Chat channels: list them, link WhatsApp.", no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every channel: enabled, configured, running or stopped, its account and its inbox and outbox."""
    from nanofolks.channels.whatsapp_bridge import auth_dir, is_linked
    from nanofolks.cli.gateway import print_channels
    from nanofolks.gateway.report import channel_report, worker_report

    services = open_services()
    rows = channel_report(services.config, services.db, worker_report(services.db))
    linked = is_linked()
    for row in rows:  # WhatsApp alone also needs a linked device (`channels login whatsapp`)
        whatsapp = row["channel"] == "whatsapp"
        row["ready"] = row["configured"] and (linked or not whatsapp)
        row["detail"] = (_whatsapp_detail(services.config.channels.whatsapp, linked, str(auth_dir())) if whatsapp
                         else row["problem"] or "credentials set")
    if as_json:
        print_json(rows)
        return
    print_channels(rows, details={row["channel"]: row["detail"] for row in rows if row["channel"] == "whatsapp"})


def _whatsapp_detail(whatsapp: WhatsAppConfig, linked: bool, folder: str) -> str:
    bridge = "bridge started by the gateway" if whatsapp.start_bridge else f"bridge at {whatsapp.bridge_url}"
    if not whatsapp.start_bridge and not whatsapp.bridge_token:
        bridge += " (no channels.whatsapp.bridgeToken)"
    link = "linked" if linked else "not linked: `nanofolks channels login whatsapp`"
    return f"{bridge}, {link} ({folder})"


@app.command("login")
def login(channel: str = typer.Argument(..., help="The channel to link: whatsapp.")) -> None:
    """Link WhatsApp as a device: shows a QR code to scan in WhatsApp > Settings > Linked devices."""
    from nanofolks.channels.registry import CHANNELS
    from nanofolks.channels.whatsapp_bridge import auth_dir, bridge_argv, bridge_dir, bridge_env
    from nanofolks.config.loader import load_config
    from nanofolks.gateway.locks import channel_lock_path, lock_holder

    if channel.lower() != "whatsapp":
        raise UserError(f"{channel!r} needs no login: only whatsapp links by QR code (telegram uses a bot token)")
    config = load_config()
    whatsapp = config.channels.whatsapp
    holder = lock_holder(channel_lock_path(CHANNELS["whatsapp"], config))
    if holder is not None:  # two bridges on one credentials folder would fight over the session
        raise UserError(f"a gateway (pid {holder}) is running WhatsApp: stop it first, then log in")
    argv = bridge_argv(whatsapp, login=True)
    err_console.print(f"starting the WhatsApp bridge; credentials go to {auth_dir()} (Ctrl-C to cancel)",
                      highlight=False)
    # The child writes the QR straight to this terminal; the token is not needed to log in.
    code = subprocess.run(argv, env=bridge_env(), cwd=bridge_dir(whatsapp), check=False).returncode
    if code != 0:
        raise UserError(f"the WhatsApp bridge exited with code {code} before the device was linked")
    console.print("[green]✓[/] WhatsApp linked. Set channels.whatsapp.enabled and start `nanofolks gateway`.",
                  highlight=False)
