"""EventBridge Scheduler, locally: expression evaluation, and a scheduler firing moto's schedules.

moto stores schedules but never fires them and does not validate their expressions, so this
module does both with EventBridge Scheduler's documented semantics:

- ``cron(minutes hours day-of-month month day-of-week year)``: six fields; ``?`` in exactly one
  of day-of-month / day-of-week; ``, - * /``; ``L`` and ``W`` in day-of-month; ``L`` and ``#``
  in day-of-week; JAN-DEC and SUN-SAT names; day-of-week 1-7 = SUN-SAT.
- ``rate(value minutes|hours|days)``: fixed durations from the schedule's start (a day is 24
  hours, also across a daylight-saving change).
- ``at(yyyy-mm-ddThh:mm:ss)``: one time, read in the schedule's time zone.

Cron and at() times are read in ``ScheduleExpressionTimezone``. On a spring-forward day a
local time that does not exist is skipped; on a fall-back day a repeated local time fires
once (its first occurrence), as EventBridge Scheduler does.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- the scheduler


def utc_now() -> datetime:
    return datetime.now(UTC)


class UndeliverableTargetError(RuntimeError):
    """The schedule's target is not one the local scheduler can deliver to."""


@dataclass(frozen=True)
class FireRecord:
    schedule_name: str
    group_name: str
    schedule_arn: str
    scheduled_time: datetime
    target_arn: str
    execution_id: str
    message_id: str | None = None
    error: str | None = None


_UNIVERSAL_SQS_SEND = "arn:aws:scheduler:::aws-sdk:sqs:sendMessage"
_TICK = timedelta(microseconds=1)


def substitute_context_attributes(
    text: str, *, schedule_arn: str, scheduled_time: datetime, execution_id: str, attempt: int
) -> str:
    """Replace the <aws.scheduler.*> keywords EventBridge Scheduler fills in a target Input."""
    replacements = {
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": format_scheduled_time(scheduled_time),
        "<aws.scheduler.execution-id>": execution_id,
        "<aws.scheduler.attempt-number>": str(attempt),
    }
    for keyword, value in replacements.items():
        text = text.replace(keyword, value)
    return text


class LocalScheduler:
    """Fires the ENABLED schedules stored in EventBridge Scheduler (moto) when they are due.

    Delivers to SQS queue targets (templated target: Arn = queue ARN) and to the universal
    target arn:aws:scheduler:::aws-sdk:sqs:sendMessage. Any other target is reported through
    the log and `on_fire` (and raised by fire_now), never dropped silently.

    A schedule's occurrences count from the moment this scheduler first sees it (or its
    StartDate); each due time fires once. After a pause longer than one period, at most
    `max_catch_up` missed occurrences fire, the latest ones. Local simplifications: a
    flexible time window fires at the scheduled time, a failed delivery is reported but not
    retried (attempt-number is always 1), a target without Input sends "{}", and a FIFO queue
    target gets the execution id as its deduplication id.
    """

    def __init__(
        self,
        scheduler_client: Any,
        sqs_client: Any,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_fire: Callable[[FireRecord], None] | None = None,
        tick_seconds: float = 1.0,
        max_catch_up: int = 10,
    ) -> None:
        if max_catch_up < 1:
            raise ValueError("max_catch_up must be at least 1")
        self._scheduler = scheduler_client
        self._sqs = sqs_client
        self._clock = clock
        self._on_fire = on_fire
        self._tick_seconds = tick_seconds
        self._max_catch_up = max_catch_up
        self._first_seen: dict[str, datetime] = {}
        self._last_fired: dict[str, datetime] = {}
        self._queue_urls: dict[str, str] = {}
        self._reported_invalid: set[tuple[str, str]] = set()
        self._details: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep the loop alive; the next tick retries
                logger.exception("local scheduler tick failed")
            self._stop.wait(self._tick_seconds)

    # ---- reading schedules

    def _list_schedules(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        while True:
            page = self._scheduler.list_schedules(**kwargs)
            yield from page.get("Schedules", [])
            if not page.get("NextToken"):
                return
            kwargs["NextToken"] = page["NextToken"]

    def _get_schedule(self, name: str, group: str | None) -> dict[str, Any]:
        return self._scheduler.get_schedule(Name=name, GroupName=group or "default")

    # ---- firing

    def tick(self) -> list[FireRecord]:
        """Fire every occurrence due by now that has not fired yet; returns what was fired."""
        with self._lock:
            now = self._clock()
            records: list[FireRecord] = []
            listed = list(self._list_schedules())
            self._forget_all_but({summary["Arn"] for summary in listed})
            for summary in listed:
                try:
                    records.extend(self._fire_due(self._schedule_details(summary), now))
                except Exception:  # one broken schedule must not hold up the others
                    logger.exception("schedule %s could not be processed", summary["Arn"])
            return records

    def _schedule_details(self, summary: dict[str, Any]) -> dict[str, Any]:
        """get_schedule for a listed schedule, fetched again only after it was modified."""
        arn, modified = summary["Arn"], summary.get("LastModificationDate")
        cached = self._details.get(arn)
        if cached is None or cached[0] != modified:
            cached = (modified, self._get_schedule(summary["Name"], summary.get("GroupName")))
            self._details[arn] = cached
        return cached[1]

    def _forget_all_but(self, arns: set[str]) -> None:
        """Drop what is remembered about schedules that no longer exist."""
        for remembered in (self._first_seen, self._last_fired, self._details):
            for arn in set(remembered) - arns:
                del remembered[arn]

    def _due_times(self, schedule: dict[str, Any], now: datetime) -> list[datetime]:
        arn = schedule["Arn"]
        parsed = parse_expression(schedule["ScheduleExpression"])
        zone = zone_for(schedule.get("ScheduleExpressionTimezone"))
        start_date = schedule.get("StartDate")
        end_date = schedule.get("EndDate")
        anchor = self._anchor(schedule)
        if isinstance(parsed, RateExpression):
            # Without a StartDate a rate schedule fires as soon as it exists, then every period.
            cursor = self._last_fired.get(arn, anchor - _TICK)
            # Skip whole periods beyond the catch-up limit instead of walking them one by one.
            earliest_kept = now - parsed.interval * self._max_catch_up
            if cursor < earliest_kept:
                cursor = parsed.next_after(earliest_kept, zone, anchor) - _TICK
        elif isinstance(parsed, AtExpression):
            # A one-time schedule fires even when its time passed before it was first seen
            # (a delayed run must not be lost to a pause of the local runtime).
            created = schedule.get("CreationDate") or self._first_seen[arn]
            cursor = self._last_fired.get(arn, min(created, self._first_seen[arn]) - _TICK)
        else:
            cursor = self._last_fired.get(arn, self._first_seen[arn])
            if start_date and start_date > cursor:
                cursor = start_date - _TICK
        due: list[datetime] = []
        while True:
            upcoming = parsed.next_after(cursor, zone, anchor)
            if upcoming is None or upcoming > now or (end_date and upcoming > end_date):
                return due
            due.append(upcoming)
            del due[: -self._max_catch_up]
            cursor = upcoming

    def _anchor(self, schedule: dict[str, Any]) -> datetime:
        """Where rate() periods count from: the StartDate, else when first seen."""
        return schedule.get("StartDate") or self._first_seen[schedule["Arn"]]

    def _fire_due(self, schedule: dict[str, Any], now: datetime) -> list[FireRecord]:
        arn = schedule["Arn"]
        if schedule.get("State", "ENABLED") != "ENABLED":
            self._first_seen[arn] = now  # a disabled schedule builds no backlog
            self._last_fired.pop(arn, None)
            return []
        self._first_seen.setdefault(arn, now)
        try:
            due = self._due_times(schedule, now)
        except ValueError as error:
            problem = (arn, schedule["ScheduleExpression"])
            if problem not in self._reported_invalid:
                self._reported_invalid.add(problem)
                logger.error("schedule %s cannot fire: %s", arn, error)
            return []
        records = []
        for scheduled_time in due:
            records.append(self._fire(schedule, scheduled_time))
            self._last_fired[arn] = scheduled_time
        if due and self._completed(schedule):
            self._complete(schedule)
        return records

    def _completed(self, schedule: dict[str, Any]) -> bool:
        parsed = parse_expression(schedule["ScheduleExpression"])
        zone = zone_for(schedule.get("ScheduleExpressionTimezone"))
        upcoming = parsed.next_after(
            self._last_fired[schedule["Arn"]], zone, self._anchor(schedule)
        )
        end_date = schedule.get("EndDate")
        return upcoming is None or bool(end_date and upcoming > end_date)

    def _complete(self, schedule: dict[str, Any]) -> None:
        if schedule.get("ActionAfterCompletion") == "DELETE":
            self._scheduler.delete_schedule(
                Name=schedule["Name"], GroupName=schedule.get("GroupName") or "default"
            )
            logger.info("schedule %s completed and was deleted", schedule["Arn"])

    def fire_now(self, name: str, group: str | None = None) -> FireRecord:
        """Deliver a schedule's target at once (scheduled-time = now); raises when it cannot.

        The schedule itself is left as it is: its regular occurrences still fire.
        """
        with self._lock:
            schedule = self._get_schedule(name, group)
            return self._fire(schedule, self._clock().replace(microsecond=0), raise_errors=True)

    def _fire(
        self, schedule: dict[str, Any], scheduled_time: datetime, *, raise_errors: bool = False
    ) -> FireRecord:
        execution_id = secrets.token_hex(8)
        target_arn = schedule["Target"]["Arn"]
        details = dict(
            schedule_name=schedule["Name"],
            group_name=schedule.get("GroupName") or "default",
            schedule_arn=schedule["Arn"],
            scheduled_time=scheduled_time,
            target_arn=target_arn,
            execution_id=execution_id,
        )
        try:
            record = FireRecord(
                **details, message_id=self._deliver(schedule, scheduled_time, execution_id)
            )
        except Exception as error:
            record = FireRecord(**details, error=f"{type(error).__name__}: {error}")
            logger.error("schedule %s could not deliver: %s", schedule["Arn"], record.error)
            if self._on_fire is not None:
                self._on_fire(record)
            if raise_errors:
                raise
            return record
        logger.info(
            "schedule %s fired for %s -> %s",
            schedule["Arn"],
            format_scheduled_time(scheduled_time),
            target_arn,
        )
        if self._on_fire is not None:
            self._on_fire(record)
        return record

    def _deliver(
        self, schedule: dict[str, Any], scheduled_time: datetime, execution_id: str
    ) -> str:
        target = schedule["Target"]
        target_arn: str = target["Arn"]
        body = substitute_context_attributes(
            target.get("Input", "{}"),
            schedule_arn=schedule["Arn"],
            scheduled_time=scheduled_time,
            execution_id=execution_id,
            attempt=1,
        )
        if target_arn == _UNIVERSAL_SQS_SEND:
            return self._sqs.send_message(**json.loads(body))["MessageId"]
        if target_arn.startswith("arn:") and target_arn.split(":")[2] == "sqs":
            queue_name = target_arn.split(":")[5]
            params: dict[str, Any] = {"QueueUrl": self._queue_url(target_arn), "MessageBody": body}
            group_id = target.get("SqsParameters", {}).get("MessageGroupId")
            if group_id:
                params["MessageGroupId"] = group_id
            if queue_name.endswith(".fifo"):
                params["MessageDeduplicationId"] = execution_id
            return self._sqs.send_message(**params)["MessageId"]
        raise UndeliverableTargetError(
            f"schedule {schedule['Arn']}: the local scheduler delivers to SQS queues only, "
            f"not to {target_arn}"
        )

    def _queue_url(self, queue_arn: str) -> str:
        if queue_arn not in self._queue_urls:
            _, _, _, _, account, name = queue_arn.split(":", 5)
            self._queue_urls[queue_arn] = self._sqs.get_queue_url(
                QueueName=name, QueueOwnerAWSAccountId=account
            )["QueueUrl"]
        return self._queue_urls[queue_arn]
