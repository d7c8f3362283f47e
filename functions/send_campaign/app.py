"""send-campaign: validate the campaign, take it for this run and start the sending state
machine (SQS-fed, 2 attempts)."""

from crmjobs.services.campaigns import send_campaign
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("send-campaign", send_campaign)
