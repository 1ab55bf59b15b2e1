"""Org chart: the crew as a tree by supervisor, each bot with what it is doing now (idle, thinking,
working), its model and what it cost today. The page refreshes itself every few seconds."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from nanofolks.agent.presence import PRESENCE
from nanofolks.crew.crew import LEADER, Bot, Crew
from nanofolks.llm.spend import day_start
from nanofolks.web.app import DASHBOARD, Dashboard


@dataclass
class Node:
    bot: Bot
    status: str
    model: str
    cost: float
    reports: list[Node] = field(default_factory=list)


def setup(app: web.Application) -> None:
    app.router.add_get("/org", page)


def supervisor_of(crew: Crew, bot: Bot) -> str | None:
    """Whom the bot reports to: the leader (the crew has no other hierarchy yet); the leader reports to nobody."""
    return None if bot.handle == LEADER else LEADER


def _tree(dash: Dashboard) -> list[Node]:
    services = dash.services
    crew, since = services.crew, day_start()
    nodes = {h: Node(b, PRESENCE.of(h), services.llm.model_for(h), services.usage.spent_since(since, bot=h))
             for h, b in crew.bots.items()}
    roots = []
    for handle, node in nodes.items():
        boss = supervisor_of(crew, node.bot)
        if boss in nodes and boss != handle:
            nodes[boss].reports.append(node)
        else:
            roots.append(node)
    return roots


async def page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    return dash.render(request, "org.html", page="org", roots=await dash.run(_tree, dash))
