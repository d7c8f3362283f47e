"""Knowledge table stream: when an item is deleted, its chunks leave the index."""

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from crmjobs.observability import logger, tracer
from crmjobs.services.documents import remove_deleted_items


def record_handler(record: DynamoDBRecord) -> None:
    if record.event_name != DynamoDBRecordEventName.REMOVE:
        return
    keys = record.dynamodb.keys
    remove_deleted_items([(keys["workspaceId"], keys["id"])])


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=BatchProcessor(event_type=EventType.DynamoDBStreams),
        context=context,
    )
