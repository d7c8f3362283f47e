"""execute-agent: run one agent's tool loop on its chat model (SQS-fed, 2 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.agents import execute_agent

handler = sqs_handler.sqs_task_handler("execute-agent", execute_agent)
