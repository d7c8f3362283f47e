"""send-campaign: validate the campaign, take it for this run and start the sending state
machine (SQS-fed, 2 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.campaigns import send_campaign

handler = sqs_handler.sqs_task_handler("send-campaign", send_campaign)
