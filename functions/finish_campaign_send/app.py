"""Campaign-sending state machine's last step: recount, set the campaign's status, record
the run's outcome (or its error, so the run is retried)."""

from crmjobs.observability import logger, tracer
from crmjobs.services.campaign_sending import FinishInput, finish_sending


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return finish_sending(FinishInput.model_validate(event))
