"""execute-agent: run one agent's tool loop on its chat model (SQS-fed, 2 attempts)."""

from crmjobs.services.agents import execute_agent
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("execute-agent", execute_agent)
