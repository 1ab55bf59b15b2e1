"""Org chart: the crew as a tree by supervisor (crew/org.py), each bot with what it is doing now (idle,
thinking, working), its model and what it cost today. The page refreshes itself every few seconds."""

from __future__ import annotations

from aiohttp import web

from nanofolks.agent.presence import PRESENCE
from nanofolks.crew.org import OrgNode, org_tree
from nanofolks.llm.spend import day_start
from nanofolks.web.page import DASHBOARD, Dashboard


def setup(app: web.Application) -> None:
    app.router.add_get("/org", page)


def _handles(node: OrgNode) -> list[str]:
    return [node.handle, *(h for report in node.reports for h in _handles(report))]


def _costs(dash: Dashboard, handles: list[str]) -> dict[str, float]:
    since = day_start()
    return {h: dash.services.usage.spent_since(since, bot=h) for h in handles}


async def page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    # The crew is read on the event loop, where a hire refreshes it; only the costs come from the database.
    root = org_tree(dash.services.crew, dash.services.config)
    handles = _handles(root)
    return dash.render(request, "org.html", page="org", root=root, states={h: PRESENCE.of(h) for h in handles},
                       cost=await dash.run(_costs, dash, handles))
