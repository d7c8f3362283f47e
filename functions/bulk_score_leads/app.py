"""bulk-score-leads: every prospect of a workspace that needs scoring, through the
bulk-scoring state machine (SQS-fed, 2 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.scoring import bulk_score_leads

handler = sqs_handler.sqs_task_handler("bulk-score-leads", bulk_score_leads)
