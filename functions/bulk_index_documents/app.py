"""bulk-index-documents: the workspace's unindexed items, or all with force, through the
bulk-indexing state machine (SQS-fed, 2 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.documents import bulk_index_documents

handler = sqs_handler.sqs_task_handler("bulk-index-documents", bulk_index_documents)
