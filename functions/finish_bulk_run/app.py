"""Bulk state machines' last step: record the run's outcome (totals or error), retry or
dead-letter it, and give its concurrency slot back. Also the target of the rule that
reports executions which ended without reaching that step."""

from crmjobs.observability import logger, tracer
from crmjobs.services.fanout import FinishInput, finish_bulk_run


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    finish = FinishInput.from_event(event)
    finish_bulk_run(finish)
    return {"recorded": finish.runId}
