"""process-active-agents: list the active agents and start the scheduled runs that are due
(every 5 minutes, 3 attempts)."""

from crmjobs.services.agent_scheduling import process_active_agents
from crmjobs.sqs_handler import sqs_task_handler

handler = sqs_task_handler("process-active-agents", process_active_agents)
