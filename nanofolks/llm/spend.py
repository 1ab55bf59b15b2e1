"""Daily spend limits (`spend.dailyLimitUsd`, and per bot): at 80% the user is told once, at 100% paid models
stop until local midnight and the fallback model (the local one by default) answers instead.

Spend is what litellm priced the calls at (the usage table); a model missing from its price map costs nothing
here, which `routing analytics` points out."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nanofolks.config.schema import Config, is_local
from nanofolks.llm.results import SpendLimitReached
from nanofolks.store.usage import UsageRepo

WARN_AT = 0.8


def day_start(now: float | None = None) -> float:
    """The last local midnight (spend resets there)."""
    t = time.localtime(time.time() if now is None else now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


@dataclass
class Budget:
    scope: str  # "crew" or a bot handle
    limit: float
    spent: float

    @property
    def share(self) -> float:
        return self.spent / self.limit if self.limit else 1.0

    def who(self) -> str:
        return "Today's spend" if self.scope == "crew" else f"@{self.scope}'s spend today"

    def key(self) -> str:
        return "spend.dailyLimitUsd" if self.scope == "crew" else f"spend.bots.{self.scope}.dailyLimitUsd"


class SpendGuard:
    def __init__(self, config: Config, usage: UsageRepo):
        self.config = config
        self.usage = usage

    @property
    def active(self) -> bool:
        spend = self.config.spend
        return spend.daily_limit_usd is not None or any(b.daily_limit_usd is not None for b in spend.bots.values())

    def budgets(self, bots: list[str], now: float | None = None) -> list[Budget]:
        """Today's spend against each limit that applies to these bots (the crew's, then each bot's)."""
        since = day_start(now)
        spend = self.config.spend
        out = []
        if spend.daily_limit_usd is not None:
            out.append(Budget("crew", spend.daily_limit_usd, self.usage.spent_since(since)))
        for bot in dict.fromkeys(bots):
            limit = spend.bots[bot].daily_limit_usd if bot in spend.bots else None
            if limit is not None:
                out.append(Budget(bot, limit, self.usage.spent_since(since, bot)))
        return out

    async def reached(self, bot: str, model: str) -> Budget | None:
        """The first limit a call of this bot to this model would go past (local models are free)."""
        if not self.active or is_local(model):
            return None
        budgets = await self.usage.db.quick(self.budgets, [bot])
        return next((b for b in budgets if b.spent >= b.limit), None)

    async def affordable(self, bot: str, model: str) -> tuple[str, str]:
        """(the model to call, why it is not the one asked for): a paid model past a limit gives way to the
        fallback model, or raises SpendLimitReached when there is none."""
        reached = await self.reached(bot, model)
        if reached is None:
            return model, ""
        if not self.config.spend.fallback_model:
            raise SpendLimitReached(self.stop_message(reached))
        return self.config.spend.fallback_model, self.stop_message(reached)

    def stop_message(self, budget: Budget) -> str:
        fallback = self.config.spend.fallback_model
        then = (f"the local model ({fallback}) answers meanwhile" if fallback
                else "nothing answers until then (spend.fallbackModel is empty)")
        return (f"{budget.who()} reached the ${budget.limit:.2f} daily limit ({budget.key()}): paid models are "
                f"stopped until midnight; {then}.")

    async def notices(self, bots: list[str]) -> list[str]:
        """What the user should hear now about spend: each limit past 80% or 100% is told once a day."""
        if not self.active:
            return []
        return await self.usage.db.quick(self._notices, bots)

    def _notices(self, bots: list[str]) -> list[str]:
        day = time.strftime("%Y-%m-%d", time.localtime())
        out = []
        for budget in self.budgets(bots):
            if budget.share >= 1:  # 100% told, 80% need not be any more
                if self.usage.tell_once(day, budget.scope, 100):
                    out.append(self.stop_message(budget))
            elif budget.share >= WARN_AT and self.usage.tell_once(day, budget.scope, 80):
                out.append(f"{budget.who()} is ${budget.spent:.2f}, {budget.share:.0%} of the ${budget.limit:.2f} "
                           f"daily limit ({budget.key()}); at the limit paid models stop until midnight.")
        return out
