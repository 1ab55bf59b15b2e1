"""When things happen: cron expressions (croniter), `every 30m`, `at 09:00`, durations, active hours.

A routine's schedule is stored as the user wrote it, in one of two forms:

    a cron expression        "0 9 * * 1-5"  (minute hour day month weekday, in the routine's zone)
    an interval              "every 30m"    (from the routine's creation, exact, whatever the zone)

`--at 09:00` is stored as the cron expression "0 9 * * *"."""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from dataclasses import dataclass
from functools import cached_property

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """A schedule, duration, time of day or zone that cannot be understood; the message says why."""


def parse_duration(text: str, *, minimum: float = 0.0) -> float:
    """'30m' -> 1800.0 seconds ('90s', '1.5h', '2d'; a bare number is minutes)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ScheduleError(f"invalid duration {text!r}: write a number and a unit, e.g. 90s, 30m, 2h, 1d")
    seconds = float(match.group(1)) * _UNIT[(match.group(2) or "m").lower()]
    if seconds < minimum:
        raise ScheduleError(f"duration {text!r} is too short: at least {minimum:g}s")
    return seconds


def parse_clock(text: str) -> tuple[int, int]:
    """'09:00' -> (9, 0)."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise ScheduleError(f"invalid time of day {text!r}: use HH:MM, e.g. 09:00")
    return int(match.group(1)), int(match.group(2))


def parse_hours(text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """'08:00-22:00' -> ((8, 0), (22, 0)); '' -> None (all day). A window may cross midnight (22:00-06:00)."""
    if not text.strip():
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ScheduleError(f"invalid hours {text!r}: use HH:MM-HH:MM, e.g. 08:00-22:00")
    return parse_clock(start), parse_clock(end)


def zone(name: str) -> dt.tzinfo:
    """An IANA zone ('Europe/Paris'); '' is the machine's own zone."""
    if not name:
        return dt.datetime.now().astimezone().tzinfo or dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC") from None


def from_options(schedule: str | None, every: str | None, at: str | None) -> str:
    """The schedule text to store, from exactly one of --schedule CRON, --every DURATION, --at HH:MM."""
    given = [o for o in (schedule, every, at) if o]
    if len(given) != 1:
        raise ScheduleError("give exactly one of --schedule CRON, --every DURATION or --at HH:MM")
    if every:
        return f"every {every.strip()}"
    if at:
        hour, minute = parse_clock(at)
        return f"{minute} {hour} * * *"
    return " ".join(schedule.split())  # type: ignore[union-attr]


@dataclass(frozen=True)
class Schedule:
    text: str
    tz: str = ""
    anchor: float = 0.0  # intervals count from here (the routine's creation)

    def __post_init__(self) -> None:
        if self.interval() is None:  # both raise ScheduleError for anything unusable
            self._iterator  # noqa: B018 - parsed now, so that a bad expression fails here

    def interval(self) -> float | None:
        if not self.text.lower().startswith("every "):
            return None
        return parse_duration(self.text[6:], minimum=1)

    @cached_property
    def _iterator(self):  # noqa: ANN202 - croniter is imported lazily, not at start-up
        return self._cron()

    def _cron(self):  # noqa: ANN202
        from croniter import croniter
        from croniter.croniter import CroniterError

        if len(self.text.split()) != 5:
            raise ScheduleError(f"invalid cron expression {self.text!r}: it needs 5 fields "
                                "(minute hour day month weekday), e.g. '0 9 * * 1-5'")
        try:
            return croniter(self.text, dt.datetime.now(zone(self.tz)))
        except (CroniterError, ValueError, KeyError) as exc:
            raise ScheduleError(f"invalid cron expression {self.text!r}: {exc}") from None

    def next_after(self, t: float) -> float:
        """The first due time strictly after `t` (epoch seconds)."""
        step = self.interval()
        if step is not None:
            return self.anchor + (math.floor((t - self.anchor) / step) + 1) * step
        it = self._iterator
        it.set_current(dt.datetime.fromtimestamp(t, zone(self.tz)), force=True)
        return float(it.get_next(dt.datetime).timestamp())

    def newest_at_or_before(self, t: float) -> float | None:
        """The newest due time at or before `t`; None when none has come yet (an interval's first)."""
        step = self.interval()
        if step is not None:
            count = math.floor((t - self.anchor) / step)
            return self.anchor + count * step if count >= 1 else None
        it = self._iterator
        it.set_current(dt.datetime.fromtimestamp(t, zone(self.tz)), force=True)
        previous = float(it.get_prev(dt.datetime).timestamp())
        following = self.next_after(previous)  # `t` itself may be a due time, which get_prev skips
        return following if following <= t else previous


def in_hours(t: float, hours: tuple[tuple[int, int], tuple[int, int]] | None, tz: str) -> bool:
    if hours is None:
        return True
    local = dt.datetime.fromtimestamp(t, zone(tz))
    now, start, end = local.hour * 60 + local.minute, hours[0][0] * 60 + hours[0][1], hours[1][0] * 60 + hours[1][1]
    return start <= now < end if start <= end else (now >= start or now < end)


def next_opening(t: float, hours: tuple[tuple[int, int], tuple[int, int]] | None, tz: str) -> float:
    """`t` if inside the active hours, else when they next begin."""
    if in_hours(t, hours, tz):
        return t
    assert hours is not None
    local = dt.datetime.fromtimestamp(t, zone(tz))
    start = local.replace(hour=hours[0][0], minute=hours[0][1], second=0, microsecond=0)
    if start.timestamp() <= t:
        start = (start + dt.timedelta(days=1)).replace(hour=hours[0][0], minute=hours[0][1])
    return start.timestamp()
