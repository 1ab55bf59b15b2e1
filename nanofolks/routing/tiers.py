"""Tiers and their models: what other parts ask when they want a model for a tier, or the cheapest one."""

from __future__ import annotations

from nanofolks.config.schema import TIERS, Config


def tier_model(config: Config, tier: str) -> str:
    """The model configured for `tier`; empty when routing is off or the tier names no model."""
    if not config.routing.enabled:
        return ""
    settings = config.routing.tiers.get(tier)  # type: ignore[call-overload]
    return settings.model if settings else ""


def cheapest_model(config: Config) -> str:
    """The model of the cheapest tier that names one (the ladder is ordered by cost), or the crew's default
    model. For work that needs no strength: classifying, summaries, heartbeats."""
    for tier in TIERS:
        if model := tier_model(config, tier):
            return model
    return config.agents.defaults.model
