"""index-document: chunk, embed and index one knowledge item (SQS-fed, 3 attempts)."""

from crmjobs.services.documents import index_document
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("index-document", index_document)
