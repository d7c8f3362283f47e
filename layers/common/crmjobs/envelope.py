"""What travels on a task's queue, written by the client and the runtime and read by the
runtime: the body (the client's envelope {"runId", "payload"}, or any producer's plain
payload) and the message attributes the job runner uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: A producer's key that makes its repeated plain messages one run (string attribute).
IDEMPOTENCY_KEY_ATTRIBUTE = "idempotencyKey"
#: How many times a run was sent back to wait for a concurrency slot (number attribute).
SLOT_WAITS_ATTRIBUTE = "slotWaits"
#: On a dead-lettered message: the run it belonged to and the error that ended it.
DEAD_LETTER_RUN_ATTRIBUTE = "runId"
DEAD_LETTER_ERROR_ATTRIBUTE = "error"


def run_message(run_id: str, payload: Any) -> str:
    """The envelope of a recorded run: its id and its payload."""
    return json.dumps({"runId": run_id, "payload": payload}, separators=(",", ":"))


@dataclass(frozen=True)
class MessageBody:
    """A body as read: `run_id` is set only for the client's envelope."""

    run_id: str | None
    payload: Any

    @property
    def is_envelope(self) -> bool:
        return self.run_id is not None


def read_body(body: str) -> MessageBody:
    """The client's envelope, or a plain payload (JSON if it parses, else the raw text)."""
    try:
        value = json.loads(body)
    except ValueError:
        return MessageBody(None, body)
    if isinstance(value, dict) and isinstance(value.get("runId"), str) and "payload" in value:
        return MessageBody(value["runId"], value["payload"])
    return MessageBody(None, value)


@dataclass(frozen=True)
class Delivery:
    """One received message, as the handler hands it to the runtime."""

    message_id: str
    body: str
    #: Opaque: what the queue needs to hide this receipt of the message again.
    receipt_handle: str
    idempotency_key: str | None = None
    slot_waits: int = 0
    #: Every string and number attribute as received (kept when the message is
    #: dead-lettered, so a redrive sends them again).
    attributes: Mapping[str, str] = field(default_factory=dict)
