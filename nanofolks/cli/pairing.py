"""`nanofolks pairing ...`: let strangers who asked for access in, or keep them out. Works while the
gateway runs: it checks the database at every message."""

from __future__ import annotations

import datetime as dt

import typer

from nanofolks.cli.common import UserError, console, open_services, print_json

app = typer.Typer(help="Pairing: approve or reject strangers who asked the crew for access.", no_args_is_help=True)


def _channel(name: str) -> str:
    from nanofolks.channels.registry import spec

    try:
        return spec(name.lower()).platform
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _repo():  # noqa: ANN202 - PairingRepo, imported lazily
    from nanofolks.store.pairing import PairingRepo

    return PairingRepo(open_services().db)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Pending codes and approved senders."""
    repo = _repo()
    pending, allowed = repo.pending(), repo.allowed()
    if as_json:
        print_json({
            "pending": [{"channel": p.platform, "code": p.code, "user_id": p.user_id, "username": p.username,
                         "expires_at": p.expires_at} for p in pending],
            "approved": [{"channel": a.platform, "user_id": a.user_id, "username": a.username,
                          "approved_at": a.approved_at} for a in allowed],
        })
        return
    if not pending and not allowed:
        console.print("no pairing requests and no approved senders")
    for p in pending:
        left = max(0, int((p.expires_at - dt.datetime.now().timestamp()) // 60))
        who = f"@{p.username} ({p.user_id})" if p.username else p.user_id
        console.print(f"[yellow]pending[/]  {p.platform} {p.code}  {who}  expires in {left} min", highlight=False)
    for a in allowed:
        who = f"@{a.username} ({a.user_id})" if a.username else a.user_id
        console.print(f"[green]approved[/] {a.platform} {who}", highlight=False)


@app.command("approve")
def approve(channel: str, code: str) -> None:
    """Let the sender of a pairing code talk to the crew."""
    from nanofolks.channels.access import normalize_code

    request = _repo().approve(_channel(channel), normalize_code(code))
    if request is None:
        raise UserError(f"no pending {channel} pairing code {code!r} (expired, used, or mistyped)")
    who = f"@{request.username} ({request.user_id})" if request.username else request.user_id
    console.print(f"[green]✓[/] {who} may now talk to the crew on {request.platform}", highlight=False)


@app.command("reject")
def reject(channel: str, code: str) -> None:
    """Refuse a pairing code."""
    from nanofolks.channels.access import normalize_code

    if not _repo().reject(_channel(channel), normalize_code(code)):
        raise UserError(f"no pending {channel} pairing code {code!r}")
    console.print(f"[green]✓[/] rejected {code.upper()}", highlight=False)


@app.command("revoke")
def revoke(channel: str, user: str = typer.Argument(..., help="User id or username.")) -> None:
    """Withdraw an approval given by pairing (allowFrom entries are edited in the config)."""
    if not _repo().revoke(_channel(channel), user):
        raise UserError(f"{user} was not approved on {channel}")
    console.print(f"[green]✓[/] {user} may no longer talk to the crew on {channel}", highlight=False)
