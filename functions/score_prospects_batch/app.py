"""Bulk-scoring step: score one batch of up to 100 prospects."""

from crmjobs.observability import logger, tracer
from crmjobs.services.fanout import BatchInput
from crmjobs.services.scoring import score_prospects_batch


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return score_prospects_batch(BatchInput.model_validate(event))
