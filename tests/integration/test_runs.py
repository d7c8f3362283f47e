"""The run ledger and the task runtime end to end: client, plain SQS messages, retries,
backoff, dead-letter queue, idempotency, cancel, replay and bad input."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from crmjobs import client, runtime
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.errors import InvalidInput, NotFound
from crmjobs.models import Prospect, Workspace


def _prospect(workspace_id: str, prospect_id: str = "p-1", **fields) -> Prospect:
    prospect = Prospect(workspace_id=workspace_id, id=prospect_id, name="Ada Lovelace", **fields)
    prospect.save()
    return prospect


def _drain(stack, task: str, rounds: int = 1) -> list:
    source = stack.source_for_task(task)
    return [outcome for outcome in (source.poll_once() for _ in range(rounds)) if outcome]


def _messages_mentioning(url: str, text: str) -> list[dict]:
    """Visible messages of a queue whose body mentions `text` (left visible)."""
    sqs = aws_client("sqs")
    found = {}
    for _ in range(5):
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        found.update({m["MessageId"]: m for m in batch if text in m["Body"]})
        if not batch:
            break
    return list(found.values())


def test_triggered_run_completes_with_output(stack, workspace):
    _prospect(workspace.id, email="ada@acme.com", stage="qualified")
    run = client.trigger(
        "score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"}, tags=["import"]
    )
    assert run.status == "QUEUED"
    _drain(stack, "score-lead")
    done = client.retrieve(run.id)
    assert done.status == "COMPLETED"
    assert done.attempts == 1
    assert done.output["score"] == 10 + 15 + 10 + 15
    assert done.output["changed"] is True
    assert Prospect.get(workspace.id, "p-1").score == 50
    assert [r.id for r in client.list_runs(workspace.id, tag="import")] == [run.id]
    assert [r.id for r in client.list_runs(workspace.id, status="COMPLETED")] == [run.id]
    assert client.list_runs(workspace.id, task="bulk-score-leads") == []


def test_plain_sqs_message_is_recorded_and_run(stack, workspace):
    _prospect(workspace.id)
    aws_client("sqs").send_message(
        QueueUrl=queue_url("score-lead"),
        MessageBody=json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"}),
    )
    _drain(stack, "score-lead")
    [run] = client.list_runs(workspace.id)
    assert run.status == "COMPLETED"
    assert run.source == "sqs"
    assert run.payload == {"workspaceId": workspace.id, "prospectId": "p-1"}


def test_bad_input_fails_at_once_without_retry(stack, workspace):
    aws_client("sqs").send_message(
        QueueUrl=queue_url("score-lead"),
        MessageBody=json.dumps({"workspaceId": workspace.id, "prospectId": "p 1", "extra": 1}),
    )
    _drain(stack, "score-lead")
    [run] = client.list_runs(workspace.id)
    assert run.status == "FAILED"
    assert run.attempts == 0
    assert "prospectId" in run.error["message"] and "extra" in run.error["message"]
    assert run.error["type"] == "InvalidInput"
    assert _messages_mentioning(queue_url("score-lead"), workspace.id) == []
    assert _messages_mentioning(dead_letter_queue_url("score-lead"), workspace.id) == []


def test_client_rejects_bad_payload_before_recording(stack, workspace):
    with pytest.raises(InvalidInput, match="prospectId"):
        client.trigger("score-lead", {"workspaceId": workspace.id})
    with pytest.raises(ValueError, match="unknown task"):
        client.trigger("no-such-task", {})
    assert client.list_runs(workspace.id) == []


def test_missing_entity_fails_at_once(stack, workspace):
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "nobody"})
    _drain(stack, "score-lead")
    failed = client.retrieve(run.id)
    assert failed.status == "FAILED"
    assert failed.attempts == 1
    assert failed.error == {**failed.error, "message": "prospect not found", "type": "NotFound"}


def test_prospect_of_another_workspace_is_not_found(stack, workspace):
    other = Workspace(id=f"{workspace.id}-other", name="Other")
    other.save()
    _prospect(other.id, "p-theirs")
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-theirs"})
    _drain(stack, "score-lead")
    assert client.retrieve(run.id).error["message"] == "prospect not found"
    assert Prospect.get(other.id, "p-theirs").score is None
    with pytest.raises(NotFound):
        client.retrieve(run.id, workspace_id=other.id)


def test_transient_error_retries_with_backoff_then_dead_letters(stack, workspace, monkeypatch):
    _prospect(workspace.id)
    calls = []

    def flaky_score(prospect, now):
        calls.append(time.monotonic())
        raise ConnectionError("database unreachable")

    monkeypatch.setattr("crmjobs.services.scoring.score_and_store", flaky_score)
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 1)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    source = stack.source_for_task("score-lead")
    deadline = time.monotonic() + 20
    while len(calls) < 3 and time.monotonic() < deadline:
        source.poll_once()
        if len(calls) < 3:
            retried = client.retrieve(run.id)
            assert retried.status == "QUEUED"
            assert "database unreachable" in retried.error["message"]
    failed = client.retrieve(run.id)
    assert failed.status == "FAILED"
    assert failed.attempts == 3
    assert "after 3 attempts" in failed.error["message"]
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.9  # the message stayed hidden for its backoff
    [dead] = _messages_mentioning(dead_letter_queue_url("score-lead"), run.id)
    assert dead["MessageAttributes"]["runId"]["StringValue"] == run.id
    assert _messages_mentioning(queue_url("score-lead"), run.id) == []


def test_backoff_doubles_and_caps_at_ten_seconds():
    for attempt, base in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        delays = {runtime.backoff_seconds(attempt) for _ in range(50)}
        assert min(delays) >= base
        assert max(delays) <= min(10, int(base * 1.25) + 1)


def test_idempotency_key_returns_the_first_run_and_sends_nothing(stack, workspace):
    _prospect(workspace.id)
    payload = {"workspaceId": workspace.id, "prospectId": "p-1"}
    first = client.trigger("score-lead", payload, idempotency_key="import-42")
    again = client.trigger("score-lead", payload, idempotency_key="import-42")
    assert again.id == first.id and again.deduplicated and not first.deduplicated
    assert len(_messages_mentioning(queue_url("score-lead"), first.id)) == 1
    other_task = client.trigger(
        "bulk-score-leads", {"workspaceId": workspace.id}, idempotency_key="import-42"
    )
    assert other_task.id != first.id


def test_duplicate_delivery_does_not_run_again(stack, workspace, monkeypatch):
    _prospect(workspace.id)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    message = aws_client("sqs").receive_message(QueueUrl=queue_url("score-lead"))["Messages"][0]
    source = stack.source_for_task("score-lead")
    source.process([message])
    calls = []
    monkeypatch.setattr("crmjobs.services.scoring.score_and_store", lambda *a: calls.append(a))
    source.process([message])  # SQS delivered the same message again
    assert calls == []
    assert client.retrieve(run.id).attempts == 1


def test_canceled_run_never_executes(stack, workspace, monkeypatch):
    _prospect(workspace.id)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"}, delay=1)
    assert run.status == "DELAYED"
    canceled = client.cancel(run.id)
    assert canceled.status == "CANCELED"
    time.sleep(1.1)
    _drain(stack, "score-lead")
    assert client.retrieve(run.id).status == "CANCELED"
    assert Prospect.get(workspace.id, "p-1").score is None
    with pytest.raises(InvalidInput, match="only QUEUED or DELAYED"):
        client.cancel(run.id)


def test_long_delay_uses_a_one_time_schedule_that_cancel_removes(stack, workspace):
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id}, delay=3600)
    scheduler = aws_client("scheduler")
    group = stack.resources.environment()["SCHEDULE_GROUP_NAME"]
    schedule = scheduler.get_schedule(Name=f"run-{run.id}", GroupName=group)
    assert schedule["ScheduleExpression"].startswith("at(")
    assert json.loads(schedule["Target"]["Input"])["runId"] == run.id
    assert _messages_mentioning(queue_url("bulk-score-leads"), run.id) == []
    client.cancel(run.id)
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    assert f"run-{run.id}" not in names


def test_replay_creates_a_new_run_with_the_same_payload(stack, workspace):
    _prospect(workspace.id)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    _drain(stack, "score-lead")
    replayed = client.replay(run.id)
    assert replayed.id != run.id and replayed.replayOf == run.id
    assert replayed.payload == run.payload
    _drain(stack, "score-lead")
    assert client.retrieve(replayed.id).status == "COMPLETED"
    assert client.retrieve(replayed.id).output["changed"] is False


def test_run_over_the_workspace_limit_waits_for_a_slot(stack, workspace):
    from crmjobs import concurrency

    free = Workspace(id=f"{workspace.id}-free", name="Free", subscription_tier="free")
    free.save()
    _prospect(free.id)
    assert concurrency.acquire(free.id, "run_other", 1)  # another run holds the only slot
    run = client.trigger("score-lead", {"workspaceId": free.id, "prospectId": "p-1"})
    [outcome] = _drain(stack, "score-lead")
    assert outcome.retried == []  # acknowledged: a delayed copy waits for the slot
    waiting = client.retrieve(run.id)
    assert waiting.status == "QUEUED" and waiting.attempts == 0
    concurrency.release(free.id, "run_other")
    deadline = time.monotonic() + 15
    while client.retrieve(run.id).status != "COMPLETED" and time.monotonic() < deadline:
        _drain(stack, "score-lead")
    assert client.retrieve(run.id).status == "COMPLETED"


def test_long_delayed_run_executes_when_its_schedule_fires(stack, workspace):
    from datetime import UTC, datetime, timedelta

    from crmjobs_local.schedules import LocalScheduler

    _prospect(workspace.id)
    run = client.trigger(
        "score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"}, delay=timedelta(hours=2)
    )
    scheduler = aws_client("scheduler")
    later = LocalScheduler(
        scheduler,
        aws_client("sqs"),
        clock=lambda: datetime.now(UTC) + timedelta(hours=2, minutes=1),
    )
    fired = [record for record in later.tick() if record.schedule_name == f"run-{run.id}"]
    assert len(fired) == 1
    _drain(stack, "score-lead")
    assert client.retrieve(run.id).status == "COMPLETED"
    group = stack.resources.environment()["SCHEDULE_GROUP_NAME"]
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    assert f"run-{run.id}" not in names  # at() schedules delete themselves after firing


def test_second_delivery_of_an_executing_run_leaves_it_alone(stack, workspace):
    from crmjobs import concurrency, ledger
    from crmjobs.models import ConcurrencySlots

    _prospect(workspace.id)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    record = ledger.get(run.id)
    assert concurrency.acquire(workspace.id, run.id, 5)
    ledger.start_attempt(record)  # delivery A is executing it now
    outcomes = _drain(stack, "score-lead")  # delivery B of the same message
    assert outcomes[0].retried  # left for a later look, not acknowledged
    current = client.retrieve(run.id)
    assert (current.status, current.attempts) == ("EXECUTING", 1)
    assert run.id in ConcurrencySlots.get(workspace.id).holders.as_dict()  # A's slot kept


def test_lost_last_attempt_fails_the_run_into_the_dead_letter_queue(stack, workspace):
    from crmjobs import ledger
    from crmjobs.models import Run

    _prospect(workspace.id)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    record = ledger.get(run.id)
    for _ in range(3):  # three attempts started, the last one killed by a timeout
        record = ledger.start_attempt(record)
        record.update(actions=[Run.started_at.set("2026-01-01T00:00:00.000Z")])
        if record.attempts < 3:
            ledger.retry_later(record, "TimeoutError", "TimeoutError")
    _drain(stack, "score-lead")
    failed = client.retrieve(run.id)
    assert failed.status == "FAILED" and failed.error["type"] == "AttemptLost"
    assert "attempt 3 was lost" in failed.error["message"]
    assert _messages_mentioning(dead_letter_queue_url("score-lead"), run.id)


def test_envelope_runs_the_recorded_payload_of_its_own_task_only(stack, workspace):
    _prospect(workspace.id, "p-1")
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    forged = {"runId": run.id, "payload": {"workspaceId": "ws-victim", "prospectId": "p-9"}}
    sqs = aws_client("sqs")
    sqs.send_message(QueueUrl=queue_url("bulk-score-leads"), MessageBody=json.dumps(forged))
    _drain(stack, "bulk-score-leads")
    assert client.retrieve(run.id).status == "QUEUED"  # another task's queue: ignored
    sqs.send_message(QueueUrl=queue_url("score-lead"), MessageBody=json.dumps(forged))
    _drain(stack, "score-lead", rounds=2)
    done = client.retrieve(run.id)
    assert done.status == "COMPLETED" and done.output["prospectId"] == "p-1"


def test_producer_idempotency_key_makes_repeated_plain_messages_one_run(stack, workspace):
    _prospect(workspace.id)
    body = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
    key = {"idempotencyKey": {"DataType": "String", "StringValue": "crm-sync-7"}}
    for _ in range(2):
        aws_client("sqs").send_message(
            QueueUrl=queue_url("score-lead"), MessageBody=body, MessageAttributes=key
        )
    _drain(stack, "score-lead", rounds=2)
    [run] = client.list_runs(workspace.id)
    assert run.status == "COMPLETED" and run.idempotencyKey == "crm-sync-7"
    again = client.trigger(
        "score-lead",
        {"workspaceId": workspace.id, "prospectId": "p-1"},
        idempotency_key="crm-sync-7",
    )
    assert again.id == run.id and again.deduplicated


def test_a_run_that_cannot_be_sent_fails_and_gives_its_key_back(stack, workspace, monkeypatch):
    payload = {"workspaceId": workspace.id, "prospectId": "p-1"}
    monkeypatch.setenv("QUEUE_URL_PREFIX", queue_url("score-lead") + "-missing-")
    with pytest.raises(ClientError, match="NonExistentQueue"):
        client.trigger("score-lead", payload, idempotency_key="k-1")
    [failed] = client.list_runs(workspace.id)
    assert failed.status == "FAILED" and failed.error["type"] == "EnqueueError"
    monkeypatch.undo()
    retried = client.trigger("score-lead", payload, idempotency_key="k-1")
    assert retried.id != failed.id and not retried.deduplicated


def test_batch_trigger_validates_everything_before_recording_anything(stack, workspace):
    from crmjobs.client import TriggerRequest

    good = TriggerRequest("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    bad = TriggerRequest("score-lead", {"workspaceId": workspace.id})
    with pytest.raises(InvalidInput):
        client.batch_trigger([good, bad])
    assert client.list_runs(workspace.id) == []


def test_an_execution_may_finish_its_run_before_the_attempt_records_it(stack, workspace):
    from crmjobs import concurrency, ledger
    from crmjobs.runtime import execution_name, finish_detached_run

    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    record = ledger.start_attempt(ledger.get(run.id))
    assert concurrency.acquire(workspace.id, run.id, 5)
    finish_detached_run(run.id, execution_name(run.id, 2), output={"listed": 0})  # not its own
    assert client.retrieve(run.id).status == "EXECUTING"
    finish_detached_run(run.id, execution_name(run.id, 1), output={"listed": 0})
    assert client.retrieve(run.id).status == "COMPLETED"
    assert ledger.detach(record, execution_name(run.id, 1)) is False  # the late detach
    assert client.retrieve(run.id).output == {"listed": 0}
