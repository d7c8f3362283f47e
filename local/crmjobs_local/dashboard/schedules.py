"""The stack's EventBridge Scheduler schedules with their next firing, for the dashboard.

The one-time `run-*` schedules of delayed runs are left out: they show on their runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crmjobs.adapters.aws import client as aws_client
from crmjobs.domain.schedule_expressions import next_fire_time

DELAYED_RUN_PREFIX = "run-"


@dataclass(frozen=True)
class ScheduleView:
    name: str
    group: str
    expression: str
    timezone: str
    state: str
    target: str
    next_firing: datetime | None
    problem: str | None = None


def _summaries(scheduler: Any) -> Iterator[dict[str, Any]]:
    paginator = scheduler.get_paginator("list_schedules")
    for page in paginator.paginate():
        yield from page.get("Schedules", [])


def _view(schedule: dict[str, Any], now: datetime) -> ScheduleView:
    expression = schedule["ScheduleExpression"]
    timezone = schedule.get("ScheduleExpressionTimezone") or "UTC"
    next_firing, problem = None, None
    if schedule.get("State", "ENABLED") == "ENABLED":
        try:
            next_firing = next_fire_time(
                expression,
                timezone,
                now,
                start=schedule.get("StartDate") or schedule.get("CreationDate"),
            )
        except ValueError as error:
            problem = str(error)
    return ScheduleView(
        name=schedule["Name"],
        group=schedule.get("GroupName") or "default",
        expression=expression,
        timezone=timezone,
        state=schedule.get("State", "ENABLED"),
        target=schedule["Target"]["Arn"].rsplit(":", 1)[-1],
        next_firing=next_firing,
        problem=problem,
    )


def list_schedules(now: datetime) -> list[ScheduleView]:
    scheduler = aws_client("scheduler")
    views = []
    for summary in _summaries(scheduler):
        if summary["Name"].startswith(DELAYED_RUN_PREFIX):
            continue
        schedule = scheduler.get_schedule(
            Name=summary["Name"], GroupName=summary.get("GroupName") or "default"
        )
        views.append(_view(schedule, now))
    return sorted(views, key=lambda view: (view.group, view.name))
