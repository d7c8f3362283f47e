"""Campaign-sending step: one page of the audience into the recipient ledger."""

from crmjobs.observability import logger, tracer
from crmjobs.services.campaign_sending import ListingStep, list_audience


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return list_audience(ListingStep.model_validate(event)).model_dump(mode="json")
