"""The Lambda handler of an SQS-fed task: Powertools' BatchProcessor over the event's
records (partial batch failures), each record read into a Delivery for the runtime.

A task's function imports this module before its service (`from crmjobs import
sqs_handler` sorts first), so Powertools' batch utility is imported before pydantic:
imported after it, the utility loads every Powertools parser model for its type hints
(50-60 ms of a cold start, bench/cold_start.py), and nothing here uses them. Functions
that process no batch do not import the utility at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from crmjobs import envelope
from crmjobs.envelope import Delivery
from crmjobs.observability import logger, tracer
from crmjobs.runtime import Service, process_delivery
from crmjobs.tasks import get_task


def _attribute(record: SQSRecord, name: str) -> str | None:
    """A message attribute's string value (Lambda's event shape: stringValue)."""
    attribute = (record.raw_event.get("messageAttributes") or {}).get(name)
    return attribute.get("stringValue") if attribute else None


def delivery_of(record: SQSRecord) -> Delivery:
    slot_waits = _attribute(record, envelope.SLOT_WAITS_ATTRIBUTE)
    return Delivery(
        message_id=record.message_id,
        body=record.body,
        receipt_handle=record.receipt_handle,
        idempotency_key=_attribute(record, envelope.IDEMPOTENCY_KEY_ATTRIBUTE),
        slot_waits=int(slot_waits) if slot_waits and slot_waits.isdecimal() else 0,
        attributes={
            name: attribute["stringValue"]
            for name, attribute in (record.raw_event.get("messageAttributes") or {}).items()
            if attribute.get("stringValue") is not None
        },
    )


def sqs_task_handler(task_name: str, service: Service) -> Callable[[dict, Any], dict]:
    """The handler of a task's function: one run per record."""
    task = get_task(task_name)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict, context: Any) -> dict:
        def record_handler(record: SQSRecord) -> None:
            process_delivery(task, service, delivery_of(record), context)

        return process_partial_response(
            event=event,
            record_handler=record_handler,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )

    return handler
