"""Campaign-sending step: send one batch of recipients, paced on the shared schedule."""

from crmjobs.observability import logger, tracer
from crmjobs.services.campaign_sending import BatchInput, send_batch


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return send_batch(
        BatchInput.model_validate(event),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
