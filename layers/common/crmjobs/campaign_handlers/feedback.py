"""The feedback function: SES events delivered by EventBridge through the feedback queue."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from crmjobs.domain.feedback import NotAnSesEvent, parse_ses_event
from crmjobs.observability import logger, tracer
from crmjobs.services import feedback


def _ses_detail(body: str) -> dict[str, Any]:
    """The SES event of a record: the detail of the EventBridge event the rule delivered."""
    message = json.loads(body)
    return message.get("detail") if isinstance(message, dict) else message


def record_feedback(record: SQSRecord) -> None:
    try:
        event = parse_ses_event(_ses_detail(record.body))
    except (ValueError, NotAnSesEvent) as exc:
        logger.warning("not an SES event; dropped", extra={"error": str(exc)})
        return
    if event is None:
        logger.info("SES event of no campaign of this stack; ignored")
        return
    outcome = feedback.record_event(event)
    logger.info("SES event recorded", extra={"type": event.event_type, **outcome})


def feedback_handler():
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict, context: Any) -> dict:
        return process_partial_response(
            event=event,
            record_handler=record_feedback,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )

    return handler
