"""The turn budget: model calls allowed for one human message, shared by every bot that answers it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TurnBudget:
    """Every model call of one human message (bots, consults, delegations, tool-loop steps) takes one unit,
    so no chain of bots and tools can run on without end."""

    remaining: int

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True
