"""Org chart: the crew as a tree by supervisor (crew/org.py), each bot with what it is doing now (idle,
thinking, working), its model and what it cost today. The page refreshes itself every few seconds."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nanofolks.agent.presence import PRESENCE
from nanofolks.crew.org import OrgNode, org_tree
from nanofolks.llm.spend import day_start
from nanofolks.web.app import DASHBOARD, Dashboard


def setup(app: web.Application) -> None:
    app.router.add_get("/org", page)


def _chart(dash: Dashboard) -> dict[str, Any]:
    services = dash.services
    root = org_tree(services.crew, services.config)
    since = day_start()
    handles: list[str] = []

    def walk(node: OrgNode) -> None:
        handles.append(node.handle)
        for report in node.reports:
            walk(report)

    walk(root)
    return {"root": root, "states": {h: PRESENCE.of(h) for h in handles},
            "cost": {h: services.usage.spent_since(since, bot=h) for h in handles}}


async def page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    return dash.render(request, "org.html", page="org", **await dash.run(_chart, dash))
