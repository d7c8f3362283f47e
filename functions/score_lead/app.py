"""score-lead: score one prospect of one workspace (SQS-fed, 3 attempts)."""

from crmjobs.services.scoring import score_lead
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("score-lead", score_lead)
