"""schedule-campaign: mark the campaign scheduled and create (or replace) its one-time
schedule; a time already past sends at once (SQS-fed, 3 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.campaigns import schedule_campaign

handler = sqs_handler.sqs_task_handler("schedule-campaign", schedule_campaign)
