"""reindex-all-documents: bulk-index-documents with force, in one attempt."""

from crmjobs.services.documents import reindex_all_documents
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("reindex-all-documents", reindex_all_documents)
