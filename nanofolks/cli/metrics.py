"""`nanofolks metrics`: queues, turns, reply latency, model use and errors, read from the database (so it works
beside a running gateway, from another process)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from nanofolks.cli.common import console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.store.db import Database

RECENT_SECONDS = 300  # turns per minute over the last five minutes
LATENCY_SECONDS = 3600  # reply latency over the last hour


def metrics(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with --watch: one line per refresh)."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until Ctrl-C."),
    every: float = typer.Option(2.0, "--every", min=0.2, help="Seconds between refreshes with --watch."),
) -> None:
    """Queue depths, turns per minute, reply latency p50/p95, model calls/tokens/cost today per tier, errors."""
    db = open_services().db
    if not watch:
        _show(collect(db), as_json, line=False)
        return
    try:
        if as_json:
            while True:
                _show(collect(db), True, line=True)
                time.sleep(every)
        from rich.live import Live

        with Live(render(collect(db)), console=console, auto_refresh=False) as live:  # type: ignore[arg-type]
            while True:
                time.sleep(every)
                live.update(render(collect(db)), refresh=True)
    except KeyboardInterrupt:
        return


def collect(db: Database) -> dict[str, Any]:
    import statistics

    from nanofolks.llm.spend import day_start
    from nanofolks.store.metrics import MetricsRepo

    repo = MetricsRepo(db)
    now = time.time()
    latencies = repo.reply_seconds(now - LATENCY_SECONDS)
    recent = len(repo.reply_seconds(now - RECENT_SECONDS))
    p50 = statistics.median(latencies) if latencies else None
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18] if len(latencies) > 1 else p50
    return {
        "at": now,
        "queues": repo.queue_depths(),
        "turns_per_minute": round(recent * 60 / RECENT_SECONDS, 2),
        "reply_latency_s": {"turns": len(latencies), "p50": None if p50 is None else round(p50, 3),
                            "p95": None if p95 is None else round(p95, 3)},
        "today_by_tier": repo.usage_by_tier(day_start(now)),
        "errors_today": repo.errors(day_start(now)),
    }


def _show(data: dict[str, Any], as_json: bool, line: bool) -> None:
    if as_json:
        if line:
            import json

            typer.echo(json.dumps(data))
        else:
            print_json(data)
        return
    console.print(render(data))


def render(data: dict[str, Any]) -> Any:  # noqa: ANN401 - a rich renderable, imported lazily
    from rich.console import Group
    from rich.table import Table

    latency = data["reply_latency_s"]
    head = (f"turns/min {data['turns_per_minute']:g} (last 5 min)   reply latency, last hour: "
            + (f"p50 {latency['p50']:.2f} s, p95 {latency['p95']:.2f} s over {latency['turns']} turns"
               if latency["turns"] else "no turns"))
    queues = Table(title="queues", title_justify="left")
    for column in ("platform", "inbox", "outbox"):
        queues.add_column(column)
    for platform, depth in sorted(data["queues"].items()):
        queues.add_row(platform, str(depth["inbox"]), str(depth["outbox"]))
    tiers = Table(title="model calls today", title_justify="left")
    for column in ("tier", "calls", "tokens", "cost $"):
        tiers.add_column(column)
    for tier, use in data["today_by_tier"].items():
        tiers.add_row(tier, str(use["calls"]), str(use["tokens"]), f"{use['cost_usd']:.4f}")
    errors = ", ".join(f"{kind} {n}" for kind, n in sorted(data["errors_today"].items())) or "none"
    return Group(head, queues, tiers, f"errors today: {errors}")
