"""scheduled-agent-health-check: hourly figures, stuck executions, auto-pause (3 attempts)."""

from crmjobs import sqs_handler
from crmjobs.services.agent_health import scheduled_agent_health_check

handler = sqs_handler.sqs_task_handler("scheduled-agent-health-check", scheduled_agent_health_check)
