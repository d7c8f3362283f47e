"""Bulk-indexing step: index one batch of up to 25 knowledge items."""

from crmjobs.observability import logger, tracer
from crmjobs.services.documents import index_documents_batch
from crmjobs.services.fanout import BatchInput


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return index_documents_batch(BatchInput.model_validate(event))
