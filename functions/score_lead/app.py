"""score-lead: score one prospect of one workspace (SQS-fed, 3 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.scoring import score_lead

handler = sqs_handler.sqs_task_handler("score-lead", score_lead)
