"""Bulk-indexing step: fold the last batch results into the totals, list the next page."""

from crmjobs.observability import logger, tracer
from crmjobs.services.documents import list_documents_page
from crmjobs.services.fanout import PageState


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return list_documents_page(PageState.model_validate(event)).model_dump(mode="json")
