"""Bulk-scoring step: fold the last batch results into the totals and list the next page,
or go on in the run's next execution once this one has listed its pages."""

from crmjobs.observability import logger, tracer
from crmjobs.services.fanout import PageStep, page_step
from crmjobs.services.scoring import list_prospects_page


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return page_step(PageStep.model_validate(event), list_prospects_page).model_dump(mode="json")
