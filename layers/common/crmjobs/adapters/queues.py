"""Task queues (SQS): send a message, send up to 10 at once, hide a received message for a
while (its retry backoff), and send to a task's dead-letter queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crmjobs import config
from crmjobs.adapters.aws import client

#: SQS's limit of entries per SendMessageBatch.
MAX_BATCH = 10

Attributes = Mapping[str, str | int]


@dataclass(frozen=True)
class OutgoingMessage:
    """One entry of a batch; `id` names it in the result (a run id)."""

    id: str
    body: str
    delay_seconds: int = 0
    #: SQS fair queues: one busy group (a workspace) cannot starve the others.
    group: str | None = None


def _attributes(attributes: Attributes) -> dict[str, dict[str, str]]:
    return {
        name: {
            "DataType": "Number" if isinstance(value, int) else "String",
            "StringValue": str(value),
        }
        for name, value in attributes.items()
    }


def send(
    task: str,
    body: str,
    *,
    delay_seconds: int = 0,
    group: str | None = None,
    attributes: Attributes | None = None,
) -> None:
    """Send one message to the task's queue."""
    request = {"QueueUrl": config.queue_url(task), "MessageBody": body}
    if delay_seconds:
        request["DelaySeconds"] = delay_seconds
    if group is not None:
        request["MessageGroupId"] = group
    if attributes:
        request["MessageAttributes"] = _attributes(attributes)
    client("sqs").send_message(**request)


def send_batch(task: str, messages: Sequence[OutgoingMessage]) -> dict[str, str]:
    """Send up to MAX_BATCH messages in one request; the ids the queue refused, each with
    its reason (empty when all were sent)."""
    if len(messages) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} messages per batch, got {len(messages)}")
    entries = []
    for message in messages:
        entry = {
            "Id": message.id,
            "MessageBody": message.body,
            "DelaySeconds": message.delay_seconds,
        }
        if message.group is not None:
            entry["MessageGroupId"] = message.group
        entries.append(entry)
    response = client("sqs").send_message_batch(QueueUrl=config.queue_url(task), Entries=entries)
    return {
        failed["Id"]: failed.get("Message", failed.get("Code"))
        for failed in response.get("Failed", [])
    }


def hide(task: str, receipt_handle: str, seconds: int) -> None:
    """Keep a received message invisible for `seconds` from now (then it is delivered again)."""
    client("sqs").change_message_visibility(
        QueueUrl=config.queue_url(task), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
    )


def dead_letter(task: str, body: str, attributes: Attributes) -> None:
    """Send a message to the task's dead-letter queue."""
    client("sqs").send_message(
        QueueUrl=config.dead_letter_queue_url(task),
        MessageBody=body,
        MessageAttributes=_attributes(attributes),
    )
