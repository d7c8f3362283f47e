"""A missing or bad setting is a deployment error: the run fails at once with the
variable's name, and is neither retried nor dead-lettered."""

from __future__ import annotations

from crmjobs import client, config, runtime
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.envelope import Delivery
from crmjobs.tasks import get_task


def _left_in(url: str, run_id: str) -> list[dict]:
    sqs = aws_client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [m for m in messages.get("Messages", []) if run_id in m["Body"]]


def test_a_bad_setting_fails_the_run_at_once_naming_it(stack, workspace, monkeypatch):
    monkeypatch.setenv("SCORING_TIMEZONE", "Mars/Olympus")  # not set by the function itself
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    [outcome] = [o for o in [stack.source_for_task("score-lead").poll_once()] if o]
    assert outcome.retried == []
    failed = client.retrieve(run.id)
    assert (failed.status, failed.attempts) == ("FAILED", 0)
    assert failed.error["type"] == "ConfigurationError"
    assert "environment variable SCORING_TIMEZONE" in failed.error["message"]
    assert "'Mars/Olympus'" in failed.error["message"]
    assert _left_in(queue_url("score-lead"), run.id) == []
    assert _left_in(dead_letter_queue_url("score-lead"), run.id) == []


def test_a_setting_missing_where_it_is_used_fails_the_run_without_retry(stack, workspace):
    def needs_a_state_machine(payload, context):
        config.require("STATE_MACHINE_ARN_NOT_DEPLOYED")

    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    [message] = aws_client("sqs").receive_message(QueueUrl=queue_url("score-lead"))["Messages"]
    delivery = Delivery(message["MessageId"], message["Body"], message["ReceiptHandle"])
    runtime.process_delivery(get_task("score-lead"), needs_a_state_machine, delivery)  # acked
    failed = client.retrieve(run.id)
    assert (failed.status, failed.attempts) == ("FAILED", 1)
    assert failed.error["message"] == (
        "environment variable STATE_MACHINE_ARN_NOT_DEPLOYED is not set"
    )
    assert _left_in(dead_letter_queue_url("score-lead"), run.id) == []
