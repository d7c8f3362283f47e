"""A task's dead-letter queue (SQS) as an operator reads it: receive every message (hidden
meanwhile), make messages visible again, delete one. Sending to it is `queues.dead_letter`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from crmjobs import config
from crmjobs.adapters.aws import client
from crmjobs.errors import NotFound

#: SQS's limit of messages per ReceiveMessage and of entries per batch request.
MAX_BATCH = 10
#: A missing queue: QueueDoesNotExist in the JSON protocol, this in the query protocol.
_MISSING_QUEUE_CODES = ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    #: String and Number message attributes (runId, error, ...), as strings.
    attributes: dict[str, str]
    sent_at: datetime | None


def _missing_queue(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING_QUEUE_CODES


def exists(task: str) -> bool:
    """Whether the task's dead-letter queue exists (a deployed stack may predate a task)."""
    try:
        client("sqs").get_queue_attributes(
            QueueUrl=config.dead_letter_queue_url(task), AttributeNames=["QueueArn"]
        )
    except ClientError as error:
        if _missing_queue(error):
            return False
        raise
    return True


def receive_all(task: str, hide_seconds: int) -> list[ReceivedMessage]:
    """Every message visible now, each hidden for `hide_seconds` once received (so one pass
    sees each message once). NotFound if the queue does not exist."""
    url = config.dead_letter_queue_url(task)
    received: dict[str, ReceivedMessage] = {}
    while True:
        try:
            batch = client("sqs").receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=MAX_BATCH,
                VisibilityTimeout=hide_seconds,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["SentTimestamp"],
            ).get("Messages", [])
        except ClientError as error:
            if _missing_queue(error):
                raise NotFound(f"{task} has no dead-letter queue in this stack") from None
            raise
        if not batch:
            return list(received.values())
        for message in batch:
            received[message["MessageId"]] = _received(message)


def _received(message: dict) -> ReceivedMessage:
    sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", 0))
    return ReceivedMessage(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message["Body"],
        attributes={
            name: value["StringValue"]
            for name, value in message.get("MessageAttributes", {}).items()
            if "StringValue" in value
        },
        sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC) if sent_ms else None,
    )


def make_visible(task: str, messages: Sequence[ReceivedMessage]) -> None:
    """Put received messages back at once (otherwise they reappear after their hide time)."""
    url = config.dead_letter_queue_url(task)
    for start in range(0, len(messages), MAX_BATCH):
        client("sqs").change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
                for n, message in enumerate(messages[start : start + MAX_BATCH])
            ],
        )


def delete(task: str, message: ReceivedMessage) -> None:
    client("sqs").delete_message(
        QueueUrl=config.dead_letter_queue_url(task), ReceiptHandle=message.receipt_handle
    )
