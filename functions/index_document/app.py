"""index-document: chunk, embed and index one knowledge item (SQS-fed, 3 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.documents import index_document

handler = sqs_handler.sqs_task_handler("index-document", index_document)
