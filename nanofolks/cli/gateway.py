"""`nanofolks gateway` (run every enabled channel) and `nanofolks status` (what it is doing)."""

from __future__ import annotations

import asyncio
import json
import time

import typer

from nanofolks.cli.common import UserError, console, err_console, open_services, print_json


def gateway() -> None:
    """Run the crew on every enabled chat channel until Ctrl-C or SIGTERM."""
    from nanofolks.channels.base import ChannelError
    from nanofolks.gateway import configure_logging, serve

    services = open_services()
    log_file = configure_logging(services.config)
    err_console.print(f"gateway starting; logs in {log_file}", highlight=False)
    try:
        asyncio.run(serve(services))
    except ChannelError as exc:
        raise UserError(str(exc)) from exc
    finally:
        services.close()


def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Channels, whether the gateway runs, and the inbox, outbox and pairing queues."""
    from nanofolks.gateway import lock_holder, lock_path
    from nanofolks.store.channel_state import ChannelStateRepo
    from nanofolks.store.inbox import InboxRepo
    from nanofolks.store.outbox import OutboxRepo
    from nanofolks.store.pairing import PairingRepo

    services = open_services()
    db = services.db
    states, inbox, outbox = ChannelStateRepo(db).all(), InboxRepo(db).counts(), OutboxRepo(db).counts()
    telegram = services.config.channels.telegram
    lock_pid = None
    if telegram.token:
        from nanofolks.channels.telegram import TelegramChannel

        lock_pid = lock_holder(lock_path("telegram", TelegramChannel(telegram).lock_key))
    channels = []
    for (platform, account), keys in states.items():
        info = json.loads(keys["status"][0]) if "status" in keys else {}
        running = platform == "telegram" and lock_pid is not None
        channels.append({
            "platform": platform, "account": account, "username": info.get("username", ""),
            "state": info.get("state", "unknown") if running else "stopped",
            "pid": lock_pid if running else None,
            "last_seen_s": round(time.time() - info["at"], 1) if "at" in info else None,
            "inbox": inbox.get((platform, account), {}), "outbox": outbox.get((platform, account), {}),
        })
    data = {
        "gateway": "running" if lock_pid else "stopped",
        "configured": {"telegram": {"enabled": telegram.enabled, "token_set": bool(telegram.token),
                                    "allowFrom": len(telegram.allow_from)}},
        "channels": channels,
        "pairing_pending": len(PairingRepo(db).pending()),
    }
    services.close()
    if as_json:
        print_json(data)
        return
    console.print(f"gateway  {data['gateway']}" + (f" (pid {lock_pid})" if lock_pid else ""), highlight=False)
    console.print(f"telegram {'enabled' if telegram.enabled else 'disabled'}"
                  f"{'' if telegram.token else ', no token'}", highlight=False)
    for ch in channels:
        name = f"@{ch['username']}" if ch["username"] else ch["account"]
        console.print(f"  {ch['platform']} {name}: {ch['state']}  inbox {_fmt(ch['inbox'])}  "
                      f"outbox {_fmt(ch['outbox'])}", highlight=False)
    if data["pairing_pending"]:
        console.print(f"{data['pairing_pending']} pairing request(s) waiting: `nanofolks pairing list`",
                      highlight=False)


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"
