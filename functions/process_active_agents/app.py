"""process-active-agents: list the active agents and start the scheduled runs that are due
(every 5 minutes, 3 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.agent_scheduling import process_active_agents

handler = sqs_handler.sqs_task_handler("process-active-agents", process_active_agents)
