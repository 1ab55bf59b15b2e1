"""Daily spend limits: what counts, when the user is told, when paid models stop, and the midnight reset."""

from __future__ import annotations

import time

import pytest

from nanofolks.config.loader import ConfigError, validate
from nanofolks.config.schema import BotSpendConfig, Config
from nanofolks.llm.results import SpendLimitReached
from nanofolks.llm.spend import SpendGuard, day_start
from nanofolks.store.db import Database
from nanofolks.store.usage import Usage, UsageRepo


@pytest.fixture
def usage(db: Database) -> UsageRepo:  # on each backend (tests/conftest.py)
    return UsageRepo(db)


def guard(usage: UsageRepo, limit: float | None = 1.0, **bots: float) -> SpendGuard:
    config = Config()
    config.spend.daily_limit_usd = limit
    config.spend.bots = {b: BotSpendConfig(daily_limit_usd=v) for b, v in bots.items()}
    return SpendGuard(config, usage)


def test_day_start_is_the_last_local_midnight() -> None:
    now = time.time()
    start = day_start(now)
    assert 0 <= now - start < 25 * 3600
    assert time.localtime(start)[3:6] == (0, 0, 0)
    assert day_start(start + 1) == start and day_start(start - 1) < start  # one second earlier: yesterday


def test_only_todays_priced_calls_count(usage: UsageRepo) -> None:
    usage.record(Usage(model="openai/gpt-4o", bot="coder", cost=0.30))
    usage.record(Usage(model="openai/unknown", bot="coder", cost=None))  # no price: tokens only
    with usage.db.write() as conn:  # yesterday's spend is gone at midnight
        conn.execute("INSERT INTO usage (at, model, bot, cost) VALUES (?, 'openai/gpt-4o', 'coder', 5.0)",
                     (day_start() - 60,))
    budgets = guard(usage, 1.0, coder=0.25).budgets(["coder", "leader"])
    assert [(b.scope, b.limit, round(b.spent, 2)) for b in budgets] == [("crew", 1.0, 0.3), ("coder", 0.25, 0.3)]


async def test_told_once_at_eighty_then_once_at_the_limit(usage: UsageRepo) -> None:
    spend = guard(usage, 1.0)
    usage.record(Usage(model="openai/gpt-4o", cost=0.5))
    assert await spend.notices(["leader"]) == []
    usage.record(Usage(model="openai/gpt-4o", cost=0.35))
    first = await spend.notices(["leader"])
    assert len(first) == 1 and "85%" in first[0] and "$1.00" in first[0]
    assert await spend.notices(["leader"]) == []  # once
    usage.record(Usage(model="openai/gpt-4o", cost=0.2))
    stop = await spend.notices(["leader"])
    assert len(stop) == 1 and "paid models are stopped until midnight" in stop[0] and "local model" in stop[0]
    assert await spend.notices(["leader"]) == []
    assert await guard(usage, 1.0).notices(["leader"]) == []  # another process: still once (the database says)


async def test_past_the_limit_paid_models_give_way_to_the_fallback(usage: UsageRepo) -> None:
    spend = guard(usage, 0.5, coder=0.1)
    assert await spend.affordable("leader", "openai/gpt-4o") == ("openai/gpt-4o", "")
    usage.record(Usage(model="openai/gpt-4o", bot="coder", cost=0.2))
    model, why = await spend.affordable("coder", "openai/gpt-4o")  # the coder's own limit
    assert model == "local/smollm2" and "@coder's spend today" in why
    assert await spend.affordable("leader", "openai/gpt-4o") == ("openai/gpt-4o", "")  # the crew's is not reached
    assert await spend.affordable("coder", "local/smollm2") == ("local/smollm2", "")  # local models are free
    spend.config.spend.fallback_model = ""
    with pytest.raises(SpendLimitReached, match="nothing answers until then"):
        await spend.affordable("coder", "openai/gpt-4o")


async def test_no_limit_no_queries(usage: UsageRepo) -> None:
    spend = guard(usage, None)
    assert not spend.active
    usage.record(Usage(model="openai/gpt-4o", cost=100.0))
    assert await spend.affordable("leader", "openai/gpt-4o") == ("openai/gpt-4o", "")
    assert await spend.notices(["leader"]) == []


def test_a_paid_fallback_is_refused() -> None:
    with pytest.raises(ConfigError, match="fallbackModel must be a local model"):
        validate({"spend": {"fallbackModel": "openai/gpt-4o-mini"}})
    assert validate({"spend": {"fallbackModel": ""}}).spend.fallback_model == ""
