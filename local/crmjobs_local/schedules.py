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

import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crmjobs.domain.schedule_expressions import (
    AtExpression,
    RateExpression,
    format_scheduled_time,
    parse_expression,
    zone_for,
)

logger = logging.getLogger(__name__)


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
