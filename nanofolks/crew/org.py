"""The crew as an organization: who reports to whom (each bot's `supervisor`), checked for cycles, and the
tree the dashboard's org chart and `bot list` show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nanofolks.crew.crew import LEADER, Bot, Crew, CrewError, chain_of

if TYPE_CHECKING:
    from nanofolks.config.schema import Config


@dataclass
class OrgNode:
    handle: str
    name: str
    emoji: str
    role: str
    title: str
    model: str
    supervisor: str  # "" for the leader
    retired: bool
    reports: list[OrgNode] = field(default_factory=list)  # direct reports, in crew order

    def as_dict(self) -> dict[str, Any]:
        return {"handle": self.handle, "name": self.name, "emoji": self.emoji, "role": self.role,
                "title": self.title, "model": self.model, "supervisor": self.supervisor, "retired": self.retired,
                "reports": [r.as_dict() for r in self.reports]}


def bot_model(config: Config, bot: Bot) -> str:
    """The model a bot answers with when routing chooses nothing for the message: its own, its tier's, or
    the crew's default (the same order as `LLM.route_model`)."""
    from nanofolks.routing.tiers import tier_model

    override = config.agents.bots.get(bot.handle)
    if override and override.model:
        return override.model
    return (bot.tier and tier_model(config, bot.tier)) or config.agents.defaults.model


def org_tree(crew: Crew, config: Config, include_retired: bool = True) -> OrgNode:
    """The crew as a tree rooted at the leader. Retired bots hang where they last reported (their reports
    were moved up when they retired), marked retired."""
    bots = {**crew.bots, **(crew.retired if include_retired else {})}
    nodes = {h: OrgNode(h, b.name, b.emoji, b.role, b.title, bot_model(config, b), b.supervisor, b.retired)
             for h, b in bots.items()}
    for handle, node in nodes.items():
        if handle != LEADER:
            nodes.get(node.supervisor, nodes[LEADER]).reports.append(node)
    return nodes[LEADER]


def flatten(node: OrgNode, depth: int = 0) -> list[tuple[int, OrgNode]]:
    """The tree in reading order with each node's depth (for a text listing)."""
    rows = [(depth, node)]
    for report in node.reports:
        rows += flatten(report, depth + 1)
    return rows


def check_supervisor(crew: Crew, handle: str, supervisor: str) -> str:
    """The supervisor if `handle` may report to it, else CrewError saying why."""
    supervisor = supervisor.strip().lstrip("@").lower()
    if handle == LEADER:
        raise CrewError("@leader heads the crew and reports to nobody")
    if supervisor == handle:
        raise CrewError(f"@{handle} cannot report to itself")
    if supervisor not in crew.bots:
        retired = " (retired)" if supervisor in crew.retired else ""
        raise CrewError(f"no active bot @{supervisor}{retired} to report to; the crew: "
                        + ", ".join("@" + h for h in crew.handles))
    chain_of(crew.bots, handle, supervisor)
    return supervisor


def may_delegate(crew: Crew, boss: str, worker: str) -> bool:
    """The leader hands work to anyone; any other bot only to those below it in the org."""
    return worker != boss and worker in crew.bots and (boss == LEADER or worker in crew.reports(boss))
