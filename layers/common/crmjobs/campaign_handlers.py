"""Handlers of the campaign family's event-fed functions: they read the event shapes (SQS
records of EventBridge events, API Gateway HTTP requests, DynamoDB stream records) and call
the services, which never see an event."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from boto3.dynamodb.types import TypeDeserializer

from crmjobs.domain.feedback import NotAnSesEvent, parse_ses_event
from crmjobs.observability import logger, tracer
from crmjobs.services import campaigns, feedback, unsubscribe

_deserializer = TypeDeserializer()


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


def unsubscribe_handler():
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict, context: Any) -> dict:
        request = APIGatewayProxyEventV2(event)
        token = (request.query_string_parameters or {}).get("token")
        url = f"https://{request.request_context.domain_name}{request.raw_path}"
        if request.raw_query_string:
            url += f"?{request.raw_query_string}"
        page = unsubscribe.handle(request.request_context.http.method, token, url)
        return {
            "statusCode": page.status,
            "headers": {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
            "body": page.body,
        }

    return handler


def _image(record: dict, name: str) -> dict | None:
    image = (record.get("dynamodb") or {}).get(name)
    return {k: _deserializer.deserialize(v) for k, v in image.items()} if image else None


def campaign_stream_handler():
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict, context: Any) -> dict:
        """Records in stream order; the first that fails is reported (with the ones after
        it), so the batch resumes there."""
        for record in event.get("Records", []):
            try:
                campaigns.cancel_stale_schedules(
                    [(_image(record, "OldImage"), _image(record, "NewImage"))]
                )
            except Exception:
                logger.exception("schedule not deleted; retried from this record")
                sequence = record["dynamodb"]["SequenceNumber"]
                return {"batchItemFailures": [{"itemIdentifier": sequence}]}
        return {"batchItemFailures": []}

    return handler
