"""reindex-all-documents: bulk-index-documents with force, in one attempt."""

from crmjobs import sqs_handler
from crmjobs.services.documents import reindex_all_documents

handler = sqs_handler.sqs_task_handler("reindex-all-documents", reindex_all_documents)
