"""Memory: the same hybrid search as `nanofolks memory search`, the entities with their relations, the
people's preferences, and forget / restore (an entry goes to the archive and can come back)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from nanofolks.memory.service import MemoryError_
from nanofolks.web.page import DASHBOARD, Dashboard

HITS = 20
ENTITIES = 50


def setup(app: web.Application) -> None:
    app.router.add_get("/memory", page)
    app.router.add_post("/memory/forget", forget)
    app.router.add_post("/memory/restore", restore)


def _known(dash: Dashboard) -> dict[str, Any]:
    memory = dash.services.memory
    entities = [memory.entity(e["name"]) for e in memory.list_entities()[:ENTITIES]]
    preferences = {f"{label} ({person})": memory.preferences.of(person) for person, label in memory.preferences.people()}
    return {"entities": entities, "preferences": preferences, "archive": memory.archive.list(30)}


async def page(request: web.Request, problem: str = "", done: str = "") -> web.Response:
    dash = request.app[DASHBOARD]
    query = request.query.get("q", "").strip()
    hits: list[dict[str, Any]] = []
    if query:  # embedding the query takes a moment: off the event loop, like the bots' search tool
        hits = [h.as_dict() for h in await asyncio.to_thread(dash.services.memory.search, query, HITS)]
    known = await dash.run(_known, dash)
    return dash.render(request, "memory.html", page="memory", query=query, hits=hits, problem=problem, done=done,
                       enabled=dash.services.config.memory.enabled, **known)


async def forget(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    ref = str((await request.post()).get("ref", "")).strip()
    try:
        done = await asyncio.to_thread(dash.services.memory.forget, ref)
    except MemoryError_ as exc:
        return await page(request, problem=str(exc))
    return await page(request, done=done)


async def restore(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    raw = str((await request.post()).get("archive_id", "")).strip()
    if not raw.isdigit():
        return await page(request, problem=f"not an archive id: {raw!r}")
    try:
        entry = await asyncio.to_thread(dash.services.memory.restore, int(raw))
    except MemoryError_ as exc:
        return await page(request, problem=str(exc))
    return await page(request, done=f"restored as entry {entry.id}: {entry.text[:80]}")
