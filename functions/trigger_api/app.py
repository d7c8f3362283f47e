"""The HTTP trigger API: trigger a task; retrieve, list, cancel and replay runs."""

from crmjobs.api import app
from crmjobs.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return app.resolve(event, context)
