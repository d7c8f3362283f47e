"""Bulk state machines' last step: record the run's outcome (totals or error), retry or
dead-letter it, and give its concurrency slot back."""

from crmjobs.observability import logger, metrics, tracer
from crmjobs.services.fanout import FinishInput, finish_bulk_run


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event, context):
    finish_bulk_run(FinishInput.model_validate(event))
    return {"recorded": event["runId"]}
