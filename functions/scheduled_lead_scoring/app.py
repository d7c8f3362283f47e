"""scheduled-lead-scoring: daily at 02:00, one bulk run per active workspace."""

from crmjobs.services.nightly_scoring import scheduled_lead_scoring
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("scheduled-lead-scoring", scheduled_lead_scoring)
