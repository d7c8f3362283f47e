"""One-time EventBridge Scheduler schedules that deliver a message to a task's queue at a
given moment (delays over SQS's 15 minutes), and their deletion."""

from __future__ import annotations

from datetime import UTC, datetime

from crmjobs import config
from crmjobs.adapters.aws import client


def create_one_time(name: str, at: datetime, task: str, body: str) -> None:
    """At `at` (UTC, to the second) send `body` to the task's queue; the schedule deletes
    itself after it fires."""
    client("scheduler").create_schedule(
        Name=name,
        GroupName=config.require("SCHEDULE_GROUP_NAME"),
        ScheduleExpression=f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": config.queue_arn(config.queue_url(task)),
            "RoleArn": config.require("SCHEDULER_ROLE_ARN"),
            "Input": body,
        },
    )


def delete(name: str) -> bool:
    """Delete the schedule; False when it no longer exists (it fired and deleted itself)."""
    scheduler = client("scheduler")
    try:
        scheduler.delete_schedule(Name=name, GroupName=config.require("SCHEDULE_GROUP_NAME"))
    except scheduler.exceptions.ResourceNotFoundException:
        return False
    return True
