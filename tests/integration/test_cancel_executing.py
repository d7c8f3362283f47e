"""A run canceled while it executes: its service sees the request (RunContext.
cancel_requested) between units of work, raises RunCanceled, and the runtime records the
run CANCELED, gives its slot back and never retries it. A bulk run's execution is stopped
and the run is CANCELED at once with its totals so far."""

from __future__ import annotations

import json
import threading
import time

import pytest
from http_api_events import HANDLER_FILE, http_event, lambda_context

from crmjobs import client, concurrency, ledger, runtime
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.envelope import Delivery
from crmjobs.errors import Conflict, RunCanceled
from crmjobs.models import ConcurrencySlots
from crmjobs.tasks import get_task
from crmjobs_local.context import load_handler

TASK = get_task("score-lead")


def _received(url: str) -> Delivery:
    message = aws_client("sqs").receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    return Delivery(message["MessageId"], message["Body"], message["ReceiptHandle"])


def test_a_run_canceled_while_it_executes_ends_canceled_without_retry(stack, workspace):
    seen = []

    def cancel_between_units(payload, context):
        seen.append(context.cancel_requested())
        ledger.request_cancel(ledger.get(context.run_id))  # a user cancels meanwhile
        seen.append(context.cancel_requested())
        assert client.retrieve(context.run_id).cancelRequested
        raise RunCanceled("canceled between prospects")

    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    delivery = _received(queue_url("score-lead"))
    runtime.process_delivery(TASK, cancel_between_units, delivery)  # returns: acknowledged
    assert seen == [False, True]
    canceled = client.retrieve(run.id)
    assert (canceled.status, canceled.attempts) == ("CANCELED", 1)
    assert canceled.error["type"] == "RunCanceled"
    assert canceled.error["message"] == "canceled between prospects"
    assert run.id not in ConcurrencySlots.get(workspace.id).holders.as_dict()

    runtime.process_delivery(TASK, cancel_between_units, delivery)  # SQS delivers it again
    assert len(seen) == 2  # skipped: the run is finished
    dead = aws_client("sqs").receive_message(QueueUrl=dead_letter_queue_url("score-lead"))
    assert run.id not in str(dead.get("Messages", []))


def test_only_an_executing_run_takes_a_cancel_request(stack, workspace):
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    with pytest.raises(Conflict):
        ledger.request_cancel(ledger.get(run.id))  # QUEUED: client.cancel is the way
    assert ledger.cancel_requested(run.id) is False
    assert ledger.cancel_requested("run_missing") is False


# --- canceling through the client (and so the HTTP API and the CLI) ------------------


def _received_for(run_id: str) -> Delivery:
    """The run's message on the score-lead queue (earlier tests leave theirs visible)."""
    for _ in range(20):
        batch = aws_client("sqs").receive_message(
            QueueUrl=queue_url("score-lead"), MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        for message in batch:
            if run_id in message["Body"]:
                return Delivery(message["MessageId"], message["Body"], message["ReceiptHandle"])
    raise AssertionError(f"no message of {run_id}")


def _slot_holders(workspace_id: str) -> dict:
    try:
        return ConcurrencySlots.get(workspace_id).holders.as_dict()
    except ConcurrencySlots.DoesNotExist:
        return {}


def test_canceling_an_executing_bulk_run_stops_its_execution_and_keeps_the_totals(
    stack, workspace, monkeypatch
):
    from crmjobs.models import Prospect
    from crmjobs.services import scoring

    with Prospect.batch_write() as batch:
        for n in range(12):
            batch.save(Prospect(workspace_id=workspace.id, id=f"p-{n:03d}", name=f"P{n}"))
    monkeypatch.setattr(scoring, "PAGE_SIZE", 5)
    release = threading.Event()
    batch_get = Prospect.batch_get

    def held_second_batch(keys, *args, **kwargs):
        keys = list(keys)
        if "p-005" in {key[1] for key in keys}:
            release.wait(30)
        return batch_get(keys, *args, **kwargs)

    monkeypatch.setattr(Prospect, "batch_get", held_second_batch)
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id}, idempotency_key="k")
    try:
        stack.source_for_task("bulk-score-leads").poll_once()
        deadline = time.monotonic() + 30
        while (client.retrieve(run.id).output or {}).get("pages") != 2:
            assert time.monotonic() < deadline, "the second page was never listed"
            time.sleep(0.1)
        canceled = client.cancel(run.id)
    finally:
        release.set()
    assert canceled.status == "CANCELED" and canceled.error["type"] == "RunCanceled"
    so_far = {"processed": 5, "changed": 5, "unchanged": 0, "failed": 0, "pages": 2}
    assert canceled.output == {**so_far, "listed": 10}
    assert run.id not in _slot_holders(workspace.id)
    sfn = aws_client("stepfunctions")
    machine = stack.resources.state_machines["BulkScoreLeadsStateMachine"]
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{run.id}-1"
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sfn.describe_execution(executionArn=arn)["status"] in ("ABORTED", "FAILED")
    time.sleep(1)  # whatever the stopped execution still reports changes nothing
    assert client.retrieve(run.id).model_dump(exclude={"updatedAt"}) == canceled.model_dump(
        exclude={"updatedAt"}
    )
    assert Prospect.get(workspace.id, "p-011").score is None  # never listed
    again = client.trigger("bulk-score-leads", {"workspaceId": workspace.id}, idempotency_key="k")
    assert again.id != run.id and not again.deduplicated  # canceling gave the key back


def test_a_cancel_request_reaches_the_service_and_the_run_ends_canceled(stack, workspace):
    seen = []

    def stops_at_its_next_check(payload, context):
        view = client.cancel(context.run_id)  # someone cancels while it executes
        assert (view.status, view.cancelRequested) == ("EXECUTING", True)
        seen.append(context.cancel_requested())
        raise RunCanceled("stopped between units of work")

    run = client.trigger(
        "score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"}, idempotency_key="k"
    )
    runtime.process_delivery(TASK, stops_at_its_next_check, _received_for(run.id))
    assert seen == [True]
    done = client.retrieve(run.id)
    assert (done.status, done.cancelRequested) == ("CANCELED", True)
    assert run.id not in _slot_holders(workspace.id)
    again = client.trigger(
        "score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"}, idempotency_key="k"
    )
    assert again.id != run.id


def test_a_canceled_run_whose_attempt_fails_is_not_retried(stack, workspace):
    def fails_after_a_cancel(payload, context):
        client.cancel(context.run_id)
        raise ConnectionError("database unreachable")

    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    delivery = _received_for(run.id)
    runtime.process_delivery(TASK, fails_after_a_cancel, delivery)  # returns: acknowledged
    done = client.retrieve(run.id)
    assert (done.status, done.attempts) == ("CANCELED", 1)
    assert "database unreachable" in done.error["message"]
    assert run.id not in _slot_holders(workspace.id)


def test_a_run_canceled_while_waiting_for_its_retry_never_runs_again(stack, workspace):
    attempts = []

    def flaky(payload, context):
        attempts.append(context.attempt)
        raise ConnectionError("database unreachable")

    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    delivery = _received_for(run.id)
    record = ledger.get(run.id)
    with pytest.raises(ConnectionError):
        runtime.process_delivery(TASK, flaky, delivery)
    assert client.retrieve(run.id).status == "QUEUED"
    record.refresh()
    record.cancel_requested = True  # the request landed just as the attempt failed
    record.save()
    runtime.process_delivery(TASK, flaky, delivery)
    assert attempts == [1]
    assert client.retrieve(run.id).status == "CANCELED"


def test_the_http_api_cancels_an_executing_run(stack, workspace):
    handler = load_handler(HANDLER_FILE)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    ledger.start_attempt(ledger.get(run.id))  # a delivery is executing it
    response = handler(http_event("POST", f"/runs/{run.id}/cancel"), lambda_context())
    assert response["statusCode"] == 200, response["body"]
    body = json.loads(response["body"])
    assert (body["status"], body["cancelRequested"]) == ("EXECUTING", True)
    assert ledger.cancel_requested(run.id)


#: The tasks whose work goes on in a state machine (their service answers Detached), and
#: what each is triggered with.
DETACHED = {
    "bulk-score-leads": {},
    "bulk-index-documents": {},
    "reindex-all-documents": {},
    "send-campaign": {"campaignId": "c-1"},
}


@pytest.mark.parametrize("task", sorted(DETACHED))
def test_a_detached_run_canceled_while_executing_gives_its_key_back(stack, workspace, task):
    payload = {"workspaceId": workspace.id, **DETACHED[task]}
    run = client.trigger(task, payload, idempotency_key="sync-7")
    execution = runtime.execution_name(run.id, 1)
    ledger.detach(ledger.start_attempt(ledger.get(run.id)), execution)  # its state machine
    assert concurrency.acquire(workspace.id, run.id, 5)
    ledger.request_cancel(ledger.get(run.id))  # a user cancels; the execution stops early
    runtime.finish_detached_run(run.id, execution, error="RunCanceled: stopped at a batch")
    done = client.retrieve(run.id)
    assert (done.status, done.error["type"]) == ("CANCELED", "RunCanceled")
    assert run.id not in _slot_holders(workspace.id)
    again = client.trigger(task, payload, idempotency_key="sync-7")
    assert again.id != run.id and not again.deduplicated  # canceling gave the key back
