"""What the task runtime does with each received message before any work: a run only ever
executes its own recorded payload (a second plain message with the same idempotency key is
a duplicate, whatever its body says), and a message it cannot record as it is (over a
limit, a malformed envelope) is rejected on its first receive: dead-lettered with the
reason, a FAILED run whenever one can be recorded, never retried."""

from __future__ import annotations

import json
import time

import pytest

from crmjobs import client, runtime
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.ledger import run_id_for_message
from crmjobs.models import Prospect
from crmjobs.tasks import SYSTEM_WORKSPACE


def _send(body: str, **attributes: str) -> str:
    return aws_client("sqs").send_message(
        QueueUrl=queue_url("score-lead"),
        MessageBody=body,
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )["MessageId"]


def _queue_messages(url: str, message_id: str) -> list[dict]:
    """The queue's visible messages with this id (left visible)."""
    found = []
    for _ in range(5):
        batch = (
            aws_client("sqs")
            .receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
            )
            .get("Messages", [])
        )
        found += [m for m in batch if m["MessageId"] == message_id]
        if not batch:
            break
    return found


def _dead_letters(body_fragment: str) -> list[dict]:
    found = {}
    for _ in range(10):
        batch = (
            aws_client("sqs")
            .receive_message(
                QueueUrl=dead_letter_queue_url("score-lead"),
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
            )
            .get("Messages", [])
        )
        found.update({m["MessageId"]: m for m in batch if body_fragment in m["Body"]})
        if not batch:
            break
    return list(found.values())


def test_a_reused_key_on_a_plain_message_never_runs_another_messages_payload(
    stack, workspace, monkeypatch
):
    for prospect_id in ("p-1", "p-2"):
        Prospect(workspace_id=workspace.id, id=prospect_id, name="Ada").save()
    from crmjobs.services import scoring

    score_and_store = scoring.score_and_store
    failures = ["database unreachable"]

    def fails_once(prospect, now):
        if failures:
            raise ConnectionError(failures.pop())
        return score_and_store(prospect, now)

    monkeypatch.setattr(scoring, "score_and_store", fails_once)
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 1)
    source = stack.source_for_task("score-lead")

    first = _send(
        json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"}), idempotencyKey="sync-1"
    )
    source.poll_once()
    [run] = client.list_runs(workspace.id)
    assert (run.status, run.attempts) == ("QUEUED", 1)  # back to wait for its retry

    second = _send(
        json.dumps({"workspaceId": workspace.id, "prospectId": "p-2"}), idempotencyKey="sync-1"
    )
    deadline = time.monotonic() + 15
    while client.retrieve(run.id).status != "COMPLETED" and time.monotonic() < deadline:
        source.poll_once()
        time.sleep(0.2)

    assert [r.id for r in client.list_runs(workspace.id)] == [run.id]
    done = client.retrieve(run.id)
    assert (done.status, done.attempts) == ("COMPLETED", 2)
    assert done.payload["prospectId"] == done.output["prospectId"] == "p-1"
    assert Prospect.get(workspace.id, "p-1").score is not None
    assert Prospect.get(workspace.id, "p-2").score is None
    for message_id in (first, second):  # both acknowledged: nothing left to retry
        assert _queue_messages(queue_url("score-lead"), message_id) == []


def _envelope(run_id: str, workspace_id: str) -> str:
    return json.dumps(
        {"runId": run_id, "payload": {"workspaceId": workspace_id, "prospectId": "p-1"}}
    )


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("empty runId", "runId"),
        ("long runId", "runId"),
        ("long key", "idempotencyKey"),
        ("600 KB body", "bytes"),
    ],
)
def test_a_message_that_cannot_be_recorded_is_rejected_on_its_first_receive(
    stack, workspace, monkeypatch, case, reason
):
    metrics = []
    monkeypatch.setattr(runtime, "emit_metric", lambda name, task, *rest: metrics.append(name))
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    marker = workspace.id
    if case == "empty runId":
        message_id = _send(_envelope("", workspace.id))
    elif case == "long runId":
        message_id = _send(_envelope("r" * 3000, workspace.id))
    elif case == "long key":
        body = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
        message_id = _send(body, idempotencyKey="k" * 3000)
    else:
        body = json.dumps({"workspaceId": workspace.id, "notes": "x" * 600_000})
        message_id = _send(body)
    stack.source_for_task("score-lead").poll_once()

    assert _queue_messages(queue_url("score-lead"), message_id) == []  # never received again
    [dead] = _dead_letters(marker)
    assert dead["MessageId"] != message_id
    error = dead["MessageAttributes"]["error"]["StringValue"]
    assert error.startswith("rejected: ") and reason in error
    assert "MessagesRejected" in metrics

    run_id = run_id_for_message("score-lead", message_id)
    failed = client.retrieve(run_id)
    assert failed.status == "FAILED" and reason in failed.error["message"]
    assert failed.error["type"] == "InvalidInput"
    assert Prospect.get(workspace.id, "p-1").score is None
    if case == "600 KB body":  # too large to keep: recorded without it, the body is in the DLQ
        assert (failed.workspaceId, failed.payload) == (SYSTEM_WORKSPACE, {})
        assert "runId" not in dead["MessageAttributes"]
    else:
        assert failed.workspaceId == workspace.id
        assert failed.payload["prospectId"] == "p-1"
        assert dead["MessageAttributes"]["runId"]["StringValue"] == run_id
