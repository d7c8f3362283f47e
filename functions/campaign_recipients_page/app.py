"""Campaign-sending step: fold the last round's results, hand out the next round."""

from crmjobs.observability import logger, tracer
from crmjobs.services.campaign_sending import ListingStep, list_recipients


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return list_recipients(ListingStep.model_validate(event)).model_dump(mode="json")
