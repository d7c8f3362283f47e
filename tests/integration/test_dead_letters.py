"""The dead-letter service (crmjobs.services.dead_letters) on the local runtime's queues:
looking leaves messages in place, redrive replays runs or re-sends plain messages, a
scoped viewer touches only its workspace's letters."""

from __future__ import annotations

import json
import uuid

import pytest

from crmjobs import client, config
from crmjobs.adapters import queues
from crmjobs.adapters.aws import client as aws_client
from crmjobs.errors import NotFound
from crmjobs.models import Workspace
from crmjobs.services import dead_letters

TASK = "score-lead"


def _workspace() -> str:
    workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
    Workspace(id=workspace_id, name="Acme", subscription_tier="starter").save()
    return workspace_id


def _dead_lettered_run(task: str, workspace_id: str) -> str:
    """A run of the workspace whose message the runtime dead-lettered (as it does)."""
    run = client.trigger(task, {"workspaceId": workspace_id, "prospectId": "p-1"})
    queues.dead_letter(
        task, json.dumps({"runId": run.id}), {"runId": run.id, "error": "TimeoutError: slow"}
    )
    return run.id


def _queue_bodies(task: str) -> list[str]:
    """The bodies visible in the task's queue (left visible)."""
    batch = aws_client("sqs").receive_message(
        QueueUrl=config.queue_url(task), MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [message["Body"] for message in batch.get("Messages", [])]


def test_looking_leaves_the_letters_in_place(stack):
    workspace_id = _workspace()
    run_id = _dead_lettered_run(TASK, workspace_id)

    first = dead_letters.peek(TASK, viewer=workspace_id)
    again = dead_letters.peek(TASK, viewer=workspace_id)

    assert [letter.run_id for letter in first.messages] == [run_id]
    [letter] = first.messages
    assert (letter.workspace_id, letter.error) == (workspace_id, "TimeoutError: slow")
    assert letter.sent_at is not None
    assert again.messages == first.messages


def test_a_scoped_viewer_redrives_only_its_workspace(stack):
    mine, theirs = _workspace(), _workspace()
    my_run = _dead_lettered_run(TASK, mine)
    their_run = _dead_lettered_run(TASK, theirs)

    result = dead_letters.redrive(TASK, viewer=mine)

    [done] = result.redriven
    assert done.letter.run_id == my_run
    replay = client.retrieve(done.new_run_id)
    assert (replay.replayOf, replay.workspaceId, replay.status) == (my_run, mine, "QUEUED")
    assert dead_letters.peek(TASK, viewer=mine).messages == []
    assert [letter.run_id for letter in dead_letters.peek(TASK, viewer=theirs).messages] == [
        their_run
    ]


def test_redrive_resends_plain_messages_and_keeps_letters_of_expired_runs(stack):
    task = "index-document"
    workspace_id = _workspace()
    plain = json.dumps({"workspaceId": workspace_id, "itemId": f"doc-{uuid.uuid4().hex[:6]}"})
    aws_client("sqs").send_message(QueueUrl=config.dead_letter_queue_url(task), MessageBody=plain)
    queues.dead_letter(task, "{}", {"runId": "run_expired", "error": "KeyError"})

    result = dead_letters.redrive(task)

    assert [(done.letter.body, done.new_run_id) for done in result.redriven] == [(plain, None)]
    assert [letter.run_id for letter in result.kept] == ["run_expired"]
    assert plain in _queue_bodies(task)
    assert [letter.run_id for letter in dead_letters.peek(task).messages] == ["run_expired"]


def test_a_stack_without_the_queues_has_no_dead_letters_to_show(stack):
    missing = "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-stack-"
    with config.function_environment({"QUEUE_URL_PREFIX": missing}):
        assert dead_letters.tasks_with_queues() == []
        with pytest.raises(NotFound, match=f"{TASK} has no dead-letter queue"):
            dead_letters.tasks_with_queues(TASK)
        with pytest.raises(NotFound, match=f"{TASK} has no dead-letter queue"):
            dead_letters.peek(TASK)
