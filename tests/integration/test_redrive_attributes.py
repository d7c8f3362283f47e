"""A redrive keeps what the dead-lettered message carried: its idempotency key (so a later
trigger with that key finds the redriven run instead of doing the work again) and every
other message attribute."""

from __future__ import annotations

import json
import time

from crmjobs import client, runtime
from crmjobs.adapters import queues
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.models import Prospect
from crmjobs.services import dead_letters

TASK = "score-lead"


def _attributes(**values: str) -> dict:
    return {name: {"DataType": "String", "StringValue": v} for name, v in values.items()}


def _dead_letter_of(run_id: str) -> dict:
    sqs = aws_client("sqs")
    for _ in range(10):
        batch = sqs.receive_message(
            QueueUrl=dead_letter_queue_url(TASK),
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for message in batch:
            if message["MessageAttributes"].get("runId", {}).get("StringValue") == run_id:
                return message
    raise AssertionError(f"no dead letter of {run_id}")


def test_a_redriven_run_keeps_its_producers_key_and_attributes(stack, workspace, monkeypatch):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    from crmjobs.services import scoring

    def always_fails(prospect, now):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(scoring, "score_and_store", always_fails)
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 1)
    aws_client("sqs").send_message(
        QueueUrl=queue_url(TASK),
        MessageBody=json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"}),
        MessageAttributes=_attributes(idempotencyKey="crm-sync-99", source="crm-sync"),
    )
    source = stack.source_for_task(TASK)
    deadline = time.monotonic() + 20
    while not client.list_runs(workspace.id, status="FAILED") and time.monotonic() < deadline:
        source.poll_once()
        time.sleep(0.2)
    [failed] = client.list_runs(workspace.id, status="FAILED")
    letter = _dead_letter_of(failed.id)["MessageAttributes"]
    assert letter["idempotencyKey"]["StringValue"] == "crm-sync-99"
    assert letter["source"]["StringValue"] == "crm-sync"
    monkeypatch.undo()

    [redriven] = dead_letters.redrive(TASK, viewer=workspace.id).redriven
    replay = client.retrieve(redriven.new_run_id)
    assert (replay.replayOf, replay.idempotencyKey) == (failed.id, "crm-sync-99")
    stack.source_for_task(TASK).poll_once()
    assert client.retrieve(replay.id).status == "COMPLETED"

    again = client.trigger(
        TASK, {"workspaceId": workspace.id, "prospectId": "p-1"}, idempotency_key="crm-sync-99"
    )
    assert again.deduplicated and again.id == replay.id  # the work is not done again


def test_a_plain_dead_letter_is_sent_again_with_its_attributes(stack, workspace):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    body = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
    # SQS's own redrive (after maxReceiveCount) of a message the runtime never recorded.
    queues.dead_letter(TASK, body, {"idempotencyKey": "crm-sync-42", "source": "crm-sync"})

    [redriven] = dead_letters.redrive(TASK, viewer=workspace.id).redriven
    assert redriven.new_run_id is None
    sent = aws_client("sqs").receive_message(
        QueueUrl=queue_url(TASK), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    [message] = [m for m in sent if m["Body"] == body]
    assert message["MessageAttributes"]["idempotencyKey"]["StringValue"] == "crm-sync-42"
    assert message["MessageAttributes"]["source"]["StringValue"] == "crm-sync"
    aws_client("sqs").change_message_visibility(
        QueueUrl=queue_url(TASK), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )

    stack.source_for_task(TASK).poll_once()
    [run] = client.list_runs(workspace.id)
    assert (run.status, run.idempotencyKey) == ("COMPLETED", "crm-sync-42")
    again = client.trigger(
        TASK, {"workspaceId": workspace.id, "prospectId": "p-1"}, idempotency_key="crm-sync-42"
    )
    assert again.deduplicated and again.id == run.id
