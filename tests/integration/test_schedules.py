"""The local scheduler against a moto server: schedules created with boto3 fire into SQS."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from crmjobs_local.schedules import LocalScheduler, UndeliverableTargetError

ROLE_ARN = "arn:aws:iam::123456789012:role/scheduler"
CONTEXT_INPUT = json.dumps(
    {
        "task": "scheduled-lead-scoring",
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "executionId": "<aws.scheduler.execution-id>",
        "scheduleArn": "<aws.scheduler.schedule-arn>",
        "attempt": "<aws.scheduler.attempt-number>",
    }
)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clients(moto_clients):
    """Clients on a freshly reset moto, so one test's schedules never fire in another."""
    return moto_clients("scheduler", "sqs")


@pytest.fixture
def queue(clients):
    _, sqs = clients
    url = sqs.create_queue(QueueName="scheduled-lead-scoring")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain(sqs, url) -> list[dict]:
    bodies = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def create(scheduler, name, expression, target, **options):
    return scheduler.create_schedule(
        Name=name,
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        **options,
    )["ScheduleArn"]


def test_daily_cron_fires_once_per_due_time_with_context_attributes(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    schedule_arn = create(
        scheduler,
        "nightly-scoring",
        "cron(0 2 * * ? *)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
    )
    clock = FakeClock(datetime(2026, 11, 29, 1, 59, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)

    assert local.tick() == []
    clock.advance(minutes=1, seconds=30)
    fired = local.tick()
    assert local.tick() == []  # the same due time never fires twice
    clock.advance(days=1)
    fired += local.tick()

    bodies = drain(sqs, url)
    assert [body["scheduledTime"] for body in bodies] == [
        "2026-11-29T02:00:00Z",
        "2026-11-30T02:00:00Z",
    ]
    assert all(body["scheduleArn"] == schedule_arn for body in bodies)
    assert all(body["attempt"] == "1" for body in bodies)
    assert len({body["executionId"] for body in bodies}) == 2
    assert [record.execution_id for record in fired] == [body["executionId"] for body in bodies]


def test_cron_in_a_time_zone_fires_at_local_time(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    create(
        scheduler,
        "nightly-new-york",
        "cron(0 2 * * ? *)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
        ScheduleExpressionTimezone="America/New_York",
    )
    clock = FakeClock(datetime(2026, 11, 29, 2, 30, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)

    local.tick()
    clock.advance(hours=4)  # 06:30 UTC = 01:30 in New York: not yet
    assert local.tick() == []
    clock.advance(hours=1)  # 07:30 UTC = 02:30 in New York
    local.tick()

    assert [body["scheduledTime"] for body in drain(sqs, url)] == ["2026-11-29T07:00:00Z"]


def test_one_time_schedule_fires_once_and_is_deleted_after_completion(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    scheduler.create_schedule_group(Name="campaigns")
    create(
        scheduler,
        "send-campaign-c1",
        "at(2026-11-29T10:00:00)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
        GroupName="campaigns",
        ActionAfterCompletion="DELETE",
    )
    create(
        scheduler,
        "delayed-run",
        "at(2026-11-29T10:00:00)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
        ActionAfterCompletion="NONE",
    )
    clock = FakeClock(datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)

    local.tick()
    clock.advance(hours=1, seconds=1)
    fired = local.tick()
    clock.advance(minutes=5)
    assert local.tick() == []

    assert sorted(record.schedule_name for record in fired) == ["delayed-run", "send-campaign-c1"]
    assert [body["scheduledTime"] for body in drain(sqs, url)] == ["2026-11-29T10:00:00Z"] * 2
    with pytest.raises(ClientError) as missing:
        scheduler.get_schedule(Name="send-campaign-c1", GroupName="campaigns")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert scheduler.get_schedule(Name="delayed-run")["State"] == "ENABLED"


def test_rate_schedule_fires_when_seen_then_every_period(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    create(
        scheduler,
        "every-five",
        "rate(5 minutes)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
    )
    clock = FakeClock(datetime(2026, 11, 29, 3, 0, 20, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)

    local.tick()
    clock.advance(minutes=4)
    local.tick()
    clock.advance(minutes=1)
    local.tick()

    assert [body["scheduledTime"] for body in drain(sqs, url)] == [
        "2026-11-29T03:00:20Z",
        "2026-11-29T03:05:20Z",
    ]


def test_updated_schedule_fires_at_its_new_time(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    target = {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT}
    create(scheduler, "campaign-c2", "at(2026-11-29T10:00:00)", target)
    clock = FakeClock(datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)
    local.tick()

    scheduler.update_schedule(
        Name="campaign-c2",
        ScheduleExpression="at(2026-11-29T11:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
    )
    clock.advance(hours=1, minutes=1)
    assert local.tick() == []
    clock.advance(hours=1)
    local.tick()

    assert [body["scheduledTime"] for body in drain(sqs, url)] == ["2026-11-29T11:00:00Z"]


def test_disabled_schedule_does_not_fire(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    create(
        scheduler,
        "paused",
        "rate(1 minute)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": "{}"},
        State="DISABLED",
    )
    clock = FakeClock(datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)

    local.tick()
    clock.advance(minutes=3)
    assert local.tick() == []
    assert drain(sqs, url) == []


def test_universal_sqs_send_message_target(clients, queue):
    scheduler, sqs = clients
    url, _ = queue
    create(
        scheduler,
        "universal",
        "at(2026-11-29T04:00:00)",
        {
            "Arn": "arn:aws:scheduler:::aws-sdk:sqs:sendMessage",
            "RoleArn": ROLE_ARN,
            "Input": json.dumps(
                {"QueueUrl": url, "MessageBody": '{"at": "<aws.scheduler.scheduled-time>"}'}
            ),
        },
    )
    clock = FakeClock(datetime(2026, 11, 29, 3, 59, tzinfo=UTC))
    local = LocalScheduler(scheduler, sqs, clock=clock)

    local.tick()
    clock.advance(minutes=2)
    local.tick()

    assert drain(sqs, url) == [{"at": "2026-11-29T04:00:00Z"}]


def test_fire_now_delivers_at_once_with_the_current_time(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    create(
        scheduler,
        "hourly-health",
        "cron(0 * * * ? *)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
    )
    clock = FakeClock(datetime(2026, 11, 29, 3, 17, 42, 500000, tzinfo=UTC))

    record = LocalScheduler(scheduler, sqs, clock=clock).fire_now("hourly-health")

    (body,) = drain(sqs, url)
    assert body["scheduledTime"] == "2026-11-29T03:17:42Z"
    assert body["executionId"] == record.execution_id
    assert record.message_id is not None and record.error is None


def test_target_it_cannot_deliver_to_is_reported_not_dropped(clients, caplog):
    scheduler, sqs = clients
    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:score-lead"
    create(
        scheduler,
        "to-lambda",
        "at(2026-11-29T05:00:00)",
        {"Arn": function_arn, "RoleArn": ROLE_ARN, "Input": "{}"},
    )
    clock = FakeClock(datetime(2026, 11, 29, 4, 59, tzinfo=UTC))
    reported = []
    local = LocalScheduler(scheduler, sqs, clock=clock, on_fire=reported.append)

    with pytest.raises(UndeliverableTargetError, match="SQS queues only"):
        local.fire_now("to-lambda")
    local.tick()
    clock.advance(minutes=2)
    local.tick()

    assert [record.target_arn for record in reported] == [function_arn, function_arn]
    assert all("SQS queues only" in record.error for record in reported)
    assert "could not deliver" in caplog.text


def test_started_scheduler_fires_in_its_thread_until_stopped(clients, queue):
    scheduler, sqs = clients
    url, arn = queue
    create(
        scheduler,
        "every-minute",
        "rate(1 minute)",
        {"Arn": arn, "RoleArn": ROLE_ARN, "Input": CONTEXT_INPUT},
    )
    fired = []
    local = LocalScheduler(scheduler, sqs, on_fire=fired.append, tick_seconds=0.05)

    local.start()
    try:
        deadline = time.monotonic() + 5
        while not fired and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        local.stop()

    assert len(fired) == 1  # a rate schedule fires as soon as it is seen, then in a minute
    assert len(drain(sqs, url)) == 1
