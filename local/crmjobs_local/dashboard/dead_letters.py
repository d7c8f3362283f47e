"""The tasks' dead-letter queues, for the dashboard: look at their messages, redrive them.

A message the runtime dead-lettered carries its run's id (`runId` attribute) and the
error; that run is FAILED in the ledger, so redriving it is a replay (a new run with the
same payload), as `crmjobs dlq redrive` does. A message without a run id (SQS's own
redrive of a message the runtime never saw) is sent to the task's queue again.

A scoped viewer sees and redrives only the messages of its workspace's runs; the others
are left in the queue, visible again at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmjobs import client, config, ledger
from crmjobs.adapters.aws import client as aws_client
from crmjobs.errors import NotFound
from crmjobs.tasks import SYSTEM_WORKSPACE, TASKS, get_task

_RECEIVE_LIMIT = 10
#: How long a looked-at message stays hidden if making it visible again failed.
_PEEK_HIDE_SECONDS = 30
_REDRIVE_HIDE_SECONDS = 300


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    run_id: str | None
    workspace_id: str | None
    error: str | None
    sent_at: datetime | None
    body: str


@dataclass
class DeadLetterQueue:
    task: str
    messages: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class Redriven:
    message_id: str
    run_id: str | None
    new_run_id: str | None = None
    new_message_id: str | None = None


def _configured_tasks() -> list[str]:
    """The tasks whose DLQ the environment names (a deployed stack may predate some)."""
    return [name for name in TASKS if config.env(f"DLQ_URL_{get_task(name).env_suffix}")]


def _receive_all(sqs: Any, url: str, hide_seconds: int) -> list[dict[str, Any]]:
    messages: dict[str, dict[str, Any]] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=_RECEIVE_LIMIT,
            VisibilityTimeout=hide_seconds,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp"],
        ).get("Messages", [])
        if not batch:
            return list(messages.values())
        messages.update({message["MessageId"]: message for message in batch})


def _make_visible(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), _RECEIVE_LIMIT):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, message in enumerate(messages[start : start + _RECEIVE_LIMIT])
            ],
        )


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return value["StringValue"] if value else None


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    run_id = _attribute(message, "runId")
    if run_id:
        run = ledger.get(run_id)
        workspace = run.workspace_id if run is not None else None
    else:
        try:
            body = json.loads(message["Body"])
        except ValueError:
            body = None
        workspace = body.get("workspaceId", SYSTEM_WORKSPACE) if isinstance(body, dict) else None
    sent = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
    return DeadLetter(
        message_id=message["MessageId"],
        run_id=run_id,
        workspace_id=workspace,
        error=_attribute(message, "error"),
        sent_at=datetime.fromtimestamp(sent, UTC) if sent else None,
        body=message["Body"],
    )


def peek(task: str, viewer: str | None = None) -> DeadLetterQueue:
    """The queue's messages (of the viewer's workspace), left in the queue."""
    sqs = aws_client("sqs")
    url = config.dead_letter_queue_url(task)
    messages = _receive_all(sqs, url, _PEEK_HIDE_SECONDS)
    _make_visible(sqs, url, messages)
    letters = [_dead_letter(message) for message in messages]
    visible = [letter for letter in letters if viewer is None or letter.workspace_id == viewer]
    visible.sort(key=lambda letter: letter.sent_at or datetime.min.replace(tzinfo=UTC))
    return DeadLetterQueue(task, visible)


def peek_all(viewer: str | None = None) -> list[DeadLetterQueue]:
    return [peek(task, viewer) for task in _configured_tasks()]


def redrive(task: str, viewer: str | None = None) -> list[Redriven]:
    """Replay every dead-lettered run of the queue (of the viewer's workspace) and delete
    its message; a plain message goes back to the task's queue."""
    sqs = aws_client("sqs")
    url = config.dead_letter_queue_url(task)
    done: list[Redriven] = []
    others: list[dict[str, Any]] = []
    for message in _receive_all(sqs, url, _REDRIVE_HIDE_SECONDS):
        letter = _dead_letter(message)
        if viewer is not None and letter.workspace_id != viewer:
            others.append(message)
            continue
        if letter.run_id:
            try:
                view = client.replay(letter.run_id, viewer)
            except NotFound:  # its run expired from the ledger: left for a look
                others.append(message)
                continue
            done.append(Redriven(letter.message_id, letter.run_id, new_run_id=view.id))
        else:
            sent = sqs.send_message(QueueUrl=config.queue_url(task), MessageBody=message["Body"])
            done.append(Redriven(letter.message_id, None, new_message_id=sent["MessageId"]))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    _make_visible(sqs, url, others)
    return done
