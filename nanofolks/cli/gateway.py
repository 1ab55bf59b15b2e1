"""`nanofolks gateway` (run every enabled channel) and `nanofolks status` (what it is doing)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from nanofolks.cli.common import console, err_console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.services import Services


def gateway() -> None:
    """Run the crew on every enabled chat channel until Ctrl-C or SIGTERM."""
    import asyncio

    from nanofolks.gateway.core import serve
    from nanofolks.gateway.logs import configure_logging

    services = open_services()
    log_file = configure_logging(services.config)
    err_console.print(f"gateway starting; logs in {log_file}", highlight=False)
    _hint_plain_secrets()
    services.keeper  # noqa: B018 - open the vault now: its values are masked from the first log line
    asyncio.run(serve(services))


def status(as_json: bool = typer.Option(False, "--json", help="Print JSON."),
           check: bool = typer.Option(False, "--check", help="Exit 1 when no gateway is running (health checks).")
           ) -> None:
    """Every channel (running or not, its account, last heartbeat), its inbox and outbox, pairing requests;
    on PostgreSQL every live gateway worker too (host, pid, since when, last seen, the locks it holds)."""
    from nanofolks.gateway.report import channel_report, worker_report
    from nanofolks.store.pairing import PairingRepo

    services = open_services()
    workers = worker_report(services.db)
    channels = channel_report(services.config, services.db, workers)
    pairing = len(PairingRepo(services.db).pending())
    pids = sorted({w["pid"] for w in workers} if workers is not None
                  else {ch["pid"] for ch in channels if ch["pid"] is not None})
    data = {"gateway": "running" if pids else "stopped", "pids": pids, "channels": channels,
            "pairing_pending": pairing, "vault": _vault_backend(), "spend": spend_today(services)}
    if workers is not None:
        data["workers"] = workers
    if as_json:
        print_json(data)
    else:
        running = f" ({len(workers)} workers)" if workers else f" (pid {', '.join(map(str, pids))})" if pids else ""
        console.print(f"gateway  {data['gateway']}{running}", highlight=False)
        if workers:
            print_workers(workers)
        console.print(f"vault    {data['vault']}", highlight=False, soft_wrap=True)
        _hint_plain_secrets()
        print_channels(channels)
        if pairing:
            console.print(f"{pairing} pairing request(s) waiting: `nanofolks pairing list`", highlight=False)
        print_spend(data["spend"])
    if check and not pids:
        raise typer.Exit(1)


def spend_today(services: Services) -> dict[str, Any]:
    """Today's spend (since local midnight) against the daily limits."""
    from nanofolks.llm.spend import SpendGuard, day_start

    budgets = SpendGuard(services.config, services.usage).budgets(list(services.config.spend.bots))
    return {
        "today_usd": round(services.usage.spent_since(day_start()), 6),
        "limit_usd": services.config.spend.daily_limit_usd,
        "bots": {b.scope: {"today_usd": round(b.spent, 6), "limit_usd": b.limit} for b in budgets if b.scope != "crew"},
    }


def print_spend(spend: dict[str, Any]) -> None:
    def line(spent: float, limit: float | None) -> str:
        if limit is None:
            return f"${spent:.2f} today (no daily limit)"
        return f"${spent:.2f} today of ${limit:.2f}" + (f" ({spent / limit:.0%})" if limit else "")

    console.print(f"spend    {line(spend['today_usd'], spend['limit_usd'])}", highlight=False)
    for bot, info in spend["bots"].items():
        console.print(f"  @{bot:<10} {line(info['today_usd'], info['limit_usd'])}", highlight=False)


def _vault_backend() -> str:
    from nanofolks.secrets.vault import VaultError, open_vault

    try:
        return open_vault().backend
    except VaultError as exc:
        return f"none ({exc})"


def _hint_plain_secrets() -> None:
    """Plain keys in config.json keep working; one line says how to move them."""
    from nanofolks.config.loader import read_raw
    from nanofolks.config.secret_fields import plain_secrets

    plain = [key for key, _ in plain_secrets(read_raw())]
    if plain:
        err_console.print(f"hint: {', '.join(plain)} in plain text in config.json; `nanofolks secrets migrate` "
                          "moves them to the vault", highlight=False, soft_wrap=True)


def print_channels(channels: list[dict[str, Any]], details: dict[str, str] | None = None) -> None:
    """One block per platform, as `channel_report` describes it; `details` adds a line per platform."""
    for ch in channels:
        line = f"[bold]{ch['channel']:<9}[/] {'enabled' if ch['enabled'] else 'disabled'}, {ch['state']}"
        if ch["pid"]:
            line += f" (pid {ch['pid']})"
        if ch["account"] and "://" in ch["username"]:  # the dashboard's "username" is its address
            line += f" at {ch['username']}"
        elif ch["account"]:
            line += f" as @{ch['username']}" if ch["username"] else f" as {ch['account']}"
        if ch["last_heartbeat"]:
            line += f", last heartbeat {time.time() - ch['last_heartbeat']:.0f}s ago"
        console.print(line, highlight=False, soft_wrap=True)
        if not ch["configured"]:
            console.print(f"          not configured: {ch['problem']}", highlight=False, soft_wrap=True)
        if any(ch["inbox"].values()) or any(ch["outbox"].values()):
            console.print(f"          inbox {_fmt(ch['inbox'])}; outbox {_fmt(ch['outbox'])}", highlight=False)
        if ch["rejected"]:
            console.print(f"          {ch['rejected']} update(s) rejected as unreadable (recorded and skipped)",
                          highlight=False)
        if details and details.get(ch["channel"]):
            console.print(f"          {details[ch['channel']]}", highlight=False, soft_wrap=True)


def print_workers(workers: list[dict[str, Any]]) -> None:
    now = time.time()
    for w in workers:
        holds = ", ".join(sorted(h.get("platform", h["lock"]) for h in w["holds"]))  # channels by platform
        console.print(f"  worker {w['id']:<4} {w['host']}:{w['pid']}, up {_ago(now - w['started'])}, seen "
                      f"{now - w['last_seen']:.0f}s ago" + (f"; holds {holds}" if holds else ""),
                      highlight=False, soft_wrap=True)


def _ago(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m" if seconds >= 60 else f"{seconds:.0f}s"


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())
