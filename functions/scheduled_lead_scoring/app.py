"""scheduled-lead-scoring: daily at 02:00, one bulk run per active workspace."""

from crmjobs import sqs_handler
from crmjobs.services.nightly_scoring import scheduled_lead_scoring

handler = sqs_handler.sqs_task_handler("scheduled-lead-scoring", scheduled_lead_scoring)
