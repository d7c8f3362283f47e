"""A run canceled while it executes: its service sees the request (RunContext.
cancel_requested) between units of work, raises RunCanceled, and the runtime records the
run CANCELED, gives its slot back and never retries it."""

from __future__ import annotations

import pytest

from crmjobs import client, ledger, runtime
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.envelope import Delivery
from crmjobs.errors import Conflict, RunCanceled
from crmjobs.models import ConcurrencySlots
from crmjobs.tasks import get_task

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
