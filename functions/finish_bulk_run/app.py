"""Bulk state machines' last step: record the run's outcome (totals or error), retry or
dead-letter it, and give its concurrency slot back."""

from crmjobs.observability import logger, tracer
from crmjobs.services.fanout import FinishInput, finish_bulk_run


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    finish_bulk_run(FinishInput.model_validate(event))
    return {"recorded": event["runId"]}
