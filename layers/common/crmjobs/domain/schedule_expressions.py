"""EventBridge Scheduler's schedule expressions, evaluated (pure: no I/O).

- ``cron(minutes hours day-of-month month day-of-week year)``: six fields; ``?`` in exactly one
  of day-of-month / day-of-week; ``, - * /``; ``L`` and ``W`` in day-of-month; ``L`` and ``#``
  in day-of-week; JAN-DEC and SUN-SAT names; day-of-week 1-7 = SUN-SAT.
- ``rate(value minutes|hours|days)``: fixed durations from the schedule's start (a day is 24
  hours, also across a daylight-saving change).
- ``at(yyyy-mm-ddThh:mm:ss)``: one time, read in the schedule's time zone.

Cron and at() times are read in the schedule's time zone. On a spring-forward day a local
time that does not exist is skipped; on a fall-back day a repeated local time fires once
(its first occurrence), as EventBridge Scheduler does. (The same rules as the local
runtime's scheduler, crmjobs_local/schedules.py, whose evaluation this is, in the layer so
that the agents' schedules use it too.)
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTH_NAMES = {name.upper(): index for index, name in enumerate(calendar.month_abbr) if name}
# AWS numbers days of the week 1-7 from Sunday.
_DAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MIN_YEAR, _MAX_YEAR = 1970, 2199


def _aws_weekday(day: date) -> int:
    """Python's Monday=0 weekday as AWS's Sunday=1 .. Saturday=7."""
    return (day.weekday() + 1) % 7 + 1


def _last_day_of_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _nearest_weekday(year: int, month: int, day: int) -> int:
    """The weekday (Mon-Fri) nearest to the given day, never leaving the month (the W rule)."""
    last = _last_day_of_month(year, month)
    day = min(day, last)
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < last else day - 2
    return day


# --------------------------------------------------------------------------- parsing


def _parse_value(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    token = token.upper()
    if token in names:
        return names[token]
    if not token.isdigit():
        raise ValueError(f"cron {field}: '{token}' is not a number or a known name")
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"cron {field}: {value} is outside {low}-{high}")
    return value


def _parse_set(
    text: str, low: int, high: int, field: str, names: dict[str, int] | None = None
) -> frozenset[int]:
    """Parse a list of values, ranges (wrapping allowed, e.g. FRI-MON) and steps."""
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"cron {field}: empty list element in '{text}'")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"cron {field}: step '{step_text}' must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _parse_value(first, low, high, names, field)
            end = _parse_value(last, low, high, names, field)
        else:
            start = _parse_value(base, low, high, names, field)
            end = high if step_text else start
        span = (end - start) % (high - low + 1)
        for offset in range(0, span + 1, step):
            values.add(low + (start - low + offset) % (high - low + 1))
    return frozenset(values)


@dataclass(frozen=True)
class _DayOfMonthRule:
    days: frozenset[int] = frozenset()
    last_day: bool = False
    nearest_weekday_to: int | None = None  # nW
    last_weekday: bool = False  # LW

    def matches(self, day: date) -> bool:
        last = _last_day_of_month(day.year, day.month)
        if self.last_day and day.day == last:
            return True
        if self.last_weekday and day.day == _nearest_weekday(day.year, day.month, last):
            return True
        if self.nearest_weekday_to is not None:
            if self.nearest_weekday_to > last:
                return False
            return day.day == _nearest_weekday(day.year, day.month, self.nearest_weekday_to)
        return day.day in self.days


@dataclass(frozen=True)
class _DayOfWeekRule:
    weekdays: frozenset[int] = frozenset()
    last_of_month: int | None = None  # nL: the last such weekday of the month
    nth_of_month: tuple[int, int] | None = None  # n#k: the k-th such weekday of the month

    def matches(self, day: date) -> bool:
        weekday = _aws_weekday(day)
        if self.last_of_month is not None:
            last = _last_day_of_month(day.year, day.month)
            return weekday == self.last_of_month and day.day + 7 > last
        if self.nth_of_month is not None:
            wanted, nth = self.nth_of_month
            return weekday == wanted and (day.day - 1) // 7 + 1 == nth
        return weekday in self.weekdays


def _parse_day_of_month(text: str) -> _DayOfMonthRule | None:
    upper = text.upper()
    if upper == "?":
        return None
    if upper == "L":
        return _DayOfMonthRule(last_day=True)
    if upper == "LW":
        return _DayOfMonthRule(last_weekday=True)
    if upper.endswith("W"):
        day = _parse_value(upper[:-1], 1, 31, {}, "day-of-month")
        return _DayOfMonthRule(nearest_weekday_to=day)
    if "L" in upper or "W" in upper:
        raise ValueError(f"cron day-of-month: '{text}' (L and W stand alone: L, LW, nW)")
    return _DayOfMonthRule(days=_parse_set(upper, 1, 31, "day-of-month"))


def _parse_day_of_week(text: str) -> _DayOfWeekRule | None:
    upper = text.upper()
    if upper == "?":
        return None
    if upper == "L":
        return _DayOfWeekRule(weekdays=frozenset({7}))  # the last day of the week: Saturday
    if "#" in upper:
        weekday_text, _, nth_text = upper.partition("#")
        if "," in upper or "-" in weekday_text or not nth_text.isdigit():
            raise ValueError(f"cron day-of-week: '{text}' (# takes one day, e.g. 3#2)")
        nth = int(nth_text)
        if not 1 <= nth <= 5:
            raise ValueError(f"cron day-of-week: '{text}' (the instance after # is 1-5)")
        weekday = _parse_value(weekday_text, 1, 7, _DAY_NAMES, "day-of-week")
        return _DayOfWeekRule(nth_of_month=(weekday, nth))
    if upper.endswith("L"):
        weekday = _parse_value(upper[:-1], 1, 7, _DAY_NAMES, "day-of-week")
        return _DayOfWeekRule(last_of_month=weekday)
    return _DayOfWeekRule(weekdays=_parse_set(upper, 1, 7, "day-of-week", _DAY_NAMES))


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class CronExpression:
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: _DayOfMonthRule | None
    months: frozenset[int]
    day_of_week: _DayOfWeekRule | None
    years: frozenset[int]

    @classmethod
    def parse(cls, body: str) -> CronExpression:
        fields = body.split()
        if len(fields) != 6:
            raise ValueError(
                f"cron() takes six fields (minutes hours day-of-month month day-of-week year), "
                f"got {len(fields)}: '{body}'"
            )
        minutes, hours, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise ValueError(
                "cron: exactly one of day-of-month and day-of-week must be '?' "
                f"(got '{dom}' and '{dow}')"
            )
        return cls(
            minutes=_parse_set(minutes, 0, 59, "minutes"),
            hours=_parse_set(hours, 0, 23, "hours"),
            day_of_month=_parse_day_of_month(dom),
            months=_parse_set(month, 1, 12, "month", _MONTH_NAMES),
            day_of_week=_parse_day_of_week(dow),
            years=_parse_set(year, _MIN_YEAR, _MAX_YEAR, "year"),
        )

    def _day_matches(self, day: date) -> bool:
        if self.day_of_month is not None:
            return self.day_of_month.matches(day)
        assert self.day_of_week is not None
        return self.day_of_week.matches(day)

    def _matching_days(self, start: date) -> Iterator[date]:
        day = start
        while day.year <= _MAX_YEAR:
            if day.year not in self.years:
                day = date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = (
                    date(day.year + 1, 1, 1)
                    if day.month == 12
                    else date(day.year, day.month + 1, 1)
                )
                continue
            if self._day_matches(day):
                yield day
            day += timedelta(days=1)

    def next_after(
        self, after: datetime, zone: ZoneInfo, start: datetime | None = None
    ) -> datetime | None:
        local_start = after.astimezone(zone).date() - timedelta(days=1)
        for day in self._matching_days(local_start):
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    instant = _local_to_utc(datetime.combine(day, time(hour, minute)), zone)
                    if instant is not None and instant > after:
                        return instant
        return None


@dataclass(frozen=True)
class RateExpression:
    interval: timedelta

    @classmethod
    def parse(cls, body: str) -> RateExpression:
        match = re.fullmatch(r"\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*", body)
        if not match:
            raise ValueError(
                f"rate() takes 'value unit' with unit minutes, hours or days, got '{body}'"
            )
        value = int(match.group(1))
        if value <= 0:
            raise ValueError(f"rate(): the value must be positive, got {value}")
        unit = match.group(2).rstrip("s") + "s"
        return cls(interval=timedelta(**{unit: value}))

    def next_after(
        self, after: datetime, zone: ZoneInfo, start: datetime | None = None
    ) -> datetime:
        """The first start + k*interval (k >= 0) later than `after` (the zone plays no part:
        periods are fixed durations); without a start, one period after `after`."""
        anchor = start or after
        if anchor > after:
            return anchor
        periods = (after - anchor) // self.interval + 1
        return anchor + periods * self.interval


@dataclass(frozen=True)
class AtExpression:
    local_time: datetime

    @classmethod
    def parse(cls, body: str) -> AtExpression:
        try:
            moment = datetime.strptime(body.strip(), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ValueError(f"at() takes yyyy-mm-ddThh:mm:ss, got '{body}'") from None
        return cls(local_time=moment)

    def instant(self, zone: ZoneInfo) -> datetime:
        return self.local_time.replace(tzinfo=zone).astimezone(UTC)

    def next_after(
        self, after: datetime, zone: ZoneInfo, start: datetime | None = None
    ) -> datetime | None:
        instant = self.instant(zone)
        return instant if instant > after else None


ScheduleExpression = CronExpression | RateExpression | AtExpression


def parse_expression(expression: str) -> ScheduleExpression:
    """Parse cron(...), rate(...) or at(...); ValueError with the reason when invalid."""
    match = re.fullmatch(r"\s*(cron|rate|at)\((.*)\)\s*", expression or "")
    if not match:
        raise ValueError(
            f"schedule expression must be cron(...), rate(...) or at(...), got '{expression}'"
        )
    kind, body = match.groups()
    if kind == "cron":
        return CronExpression.parse(body)
    if kind == "rate":
        return RateExpression.parse(body)
    return AtExpression.parse(body)


def zone_for(timezone: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{timezone}'") from None


def _local_to_utc(local: datetime, zone: ZoneInfo) -> datetime | None:
    """A wall-clock time in `zone` as UTC; None when the time does not exist (spring forward).

    fold=0 picks the first of two repeated times on a fall-back day, so it fires once.
    """
    aware = local.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        return None
    return instant


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return moment.astimezone(UTC)


def next_fire_time(
    expression: str,
    timezone: str | None,
    after: datetime,
    *,
    start: datetime | None = None,
) -> datetime | None:
    """The first fire time strictly later than `after`, in UTC; None when there is none.

    `start` anchors rate() schedules (their StartDate, or when the schedule began); it is
    ignored for cron() and at().
    """
    parsed = parse_expression(expression)
    return parsed.next_after(_as_utc(after), zone_for(timezone), _as_utc(start) if start else None)


def format_scheduled_time(moment: datetime) -> str:
    """ISO-8601 UTC with a Z, as in <aws.scheduler.scheduled-time> (2022-03-22T18:59:43Z)."""
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


#: rate() periods of a schedule without a start count from here, so every evaluation of the
#: same schedule sees the same times.
RATE_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)


def latest_fire_time(
    expression: str, timezone: str | None, *, after: datetime, not_after: datetime
) -> datetime | None:
    """The last fire time in (after, not_after], in UTC; None when there is none."""
    latest = None
    moment = next_fire_time(expression, timezone, after, start=RATE_ANCHOR)
    while moment is not None and moment <= not_after:
        latest = moment
        moment = next_fire_time(expression, timezone, moment, start=RATE_ANCHOR)
    return latest
