"""Settings: providers and models, channels, routing tiers and the spend limit. Each change goes through
`config set`'s own function (config/setting.py): the same schema validation, and a secret's value goes to
the vault, write-only: the page says whether one is set, never what it is."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nanofolks.config.schema import TIERS, ProvidersConfig
from nanofolks.web.page import DASHBOARD, Dashboard

CHATS = ("telegram", "discord", "slack", "whatsapp")
CHANNEL_KEYS = {"telegram": ("enabled", "token", "allowFrom"), "discord": ("enabled", "token", "allowFrom"),
                "slack": ("enabled", "botToken", "appToken", "allowFrom"),
                "whatsapp": ("enabled", "bridgeToken", "allowFrom", "startBridge")}


@dataclass
class Row:
    key: str
    value: str  # as typed in the box ('' for a secret)
    secret: bool
    is_set: bool  # a secret with a value (or a reference to the vault)


def setup(app: web.Application) -> None:
    app.router.add_get("/settings", page)
    app.router.add_post("/settings", change)


def _sections(dash: Dashboard) -> dict[str, list[str]]:
    providers = [f"providers.{name}.{key}" for name in ProvidersConfig.model_fields for key in ("apiKey", "apiBase")]
    models = ["agents.defaults.model"] + [f"agents.bots.{h}.model" for h in dash.services.crew.handles]
    channels = [f"channels.{c}.{k}" for c in CHATS for k in CHANNEL_KEYS[c]]
    routing = ["routing.enabled"] + [f"routing.tiers.{t}.model" for t in TIERS]
    return {"Providers": providers, "Models": models, "Channels": channels, "Routing tiers": routing,
            "Spend": ["spend.dailyLimitUsd", "spend.fallbackModel"]}


def _rows(dash: Dashboard) -> dict[str, list[Row]]:
    """Every row's value in effect (file, overrides, defaults), from the file as written: a secret's value
    is never read here, only whether there is one."""
    from nanofolks.config.loader import effective_dump, get_value, load_config
    from nanofolks.config.secret_fields import masked
    from nanofolks.config.setting import is_secret_key

    dump = masked(effective_dump(load_config(resolve_secrets=False)))
    out: dict[str, list[Row]] = {}
    for title, keys in _sections(dash).items():
        rows = []
        for key in keys:
            value, secret = get_value(dump, key), is_secret_key(key)
            shown = "" if secret or value is None else value if isinstance(value, str) else json.dumps(value)
            rows.append(Row(key, shown, secret, bool(value) if secret else False))
        out[title] = rows
    return out


async def page(request: web.Request, problem: str = "", done: str = "") -> web.Response:
    dash = request.app[DASHBOARD]
    sections = await asyncio.to_thread(_rows, dash)
    return dash.render(request, "settings.html", page="settings", sections=sections, problem=problem, done=done)


async def change(request: web.Request) -> web.Response:
    from nanofolks.config.loader import ConfigError
    from nanofolks.config.setting import apply_setting, is_secret_key

    dash = request.app[DASHBOARD]
    form = await request.post()
    key, value = str(form.get("key", "")).strip(), str(form.get("value", ""))
    allowed = {k for keys in _sections(dash).values() for k in keys}
    if key not in allowed:
        return await page(request, problem=f"{key!r} is not a setting of this page (`nanofolks config set` has them all)")
    if is_secret_key(key) and not value.strip():
        return await page(request, problem=f"{key}: type the new value (a secret is set or replaced, never shown)")
    try:
        applied: Any = await asyncio.to_thread(apply_setting, key, value if is_secret_key(key) else value.strip())
    except ConfigError as exc:
        return await page(request, problem=str(exc))
    note = f"{key} = {applied.shown}; the gateway uses it from its next start"
    return await page(request, problem=applied.hint, done=note)
