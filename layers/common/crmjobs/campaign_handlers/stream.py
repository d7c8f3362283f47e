"""The campaigns table's stream function: a campaign no longer scheduled loses its schedule."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer

from crmjobs.observability import logger, tracer
from crmjobs.services import campaigns

_deserializer = TypeDeserializer()


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
