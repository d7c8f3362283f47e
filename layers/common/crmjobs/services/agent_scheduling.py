"""process-active-agents: list the active agents (optionally of one workspace) and start an
execute-agent run for each agent whose `config.schedule` is due, once per scheduled time.

A schedule is due when one of its fire times fell in the last AGENT_SCHEDULE_LOOKBACK_MINUTES
(default 15): the task fires every 5 minutes, so a firing that is late or retried still
sees the time, and the run's idempotency key (agent + scheduled time) makes every later
firing that sees it start nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crmjobs import client, config
from crmjobs.client import TriggerRequest
from crmjobs.domain.agents import AgentConfig, parse_config
from crmjobs.domain.schedule_expressions import format_scheduled_time, latest_fire_time
from crmjobs.errors import InvalidInput
from crmjobs.models import Agent
from crmjobs.models.base import check_readable
from crmjobs.runtime import RunContext
from crmjobs.schemas import ProcessActiveAgentsPayload
from crmjobs.stores import agents as agent_store

PAGE_SIZE = 100
DEFAULT_LOOKBACK_MINUTES = 15
#: The agents listed in the run's output (the count covers them all).
MAX_LISTED = 500


def _summary(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "workspaceId": agent.workspace_id,
        "name": agent.name,
        "type": agent.type,
        "executionCount": int(agent.execution_count or 0),
        "lastExecutedAt": agent.last_executed_at.isoformat() if agent.last_executed_at else None,
    }


def due_time(agent_config: AgentConfig, now: datetime, lookback: timedelta) -> datetime | None:
    """The agent's latest scheduled time in (now - lookback, now]; None when not due.
    ValueError for an expression or time zone that is not valid."""
    schedule = agent_config.schedule
    if schedule is None:
        return None
    return latest_fire_time(
        schedule.expression, schedule.timezone, after=now - lookback, not_after=now
    )


def scheduled_run(agent: Agent, agent_config: AgentConfig, scheduled: datetime) -> TriggerRequest:
    at = format_scheduled_time(scheduled)
    assert agent_config.schedule is not None
    return TriggerRequest(
        "execute-agent",
        {
            "workspaceId": agent.workspace_id,
            "agentId": agent.id,
            "inputs": {**agent_config.schedule.inputs, "scheduledTime": at},
        },
        idempotency_key=f"agent-schedule:{agent.id}:{at}",
        tags=("scheduled",),
    )


def process_active_agents(
    payload: ProcessActiveAgentsPayload, context: RunContext, now: datetime | None = None
) -> dict[str, Any]:
    now = (payload.scheduledTime or now or datetime.now(UTC)).astimezone(UTC)
    lookback = timedelta(
        minutes=config.int_setting("AGENT_SCHEDULE_LOOKBACK_MINUTES", DEFAULT_LOOKBACK_MINUTES)
    )
    listed: list[dict[str, Any]] = []
    count = 0
    started: list[dict[str, Any]] = []
    schedule_errors: list[dict[str, str]] = []
    cursor = None
    while True:
        page = agent_store.active_page(payload.workspaceId, cursor, PAGE_SIZE)
        due: list[tuple[Agent, TriggerRequest]] = []
        for agent in page.items:
            count += 1
            if len(listed) < MAX_LISTED:
                listed.append(_summary(agent))
            try:
                check_readable(agent)  # one unreadable agent is reported, the rest go on
                agent_config = parse_config(agent.config)
                scheduled = due_time(agent_config, now, lookback)
            except (InvalidInput, ValueError) as exc:
                schedule_errors.append({"agentId": agent.id, "error": str(exc)})
                continue
            if scheduled is not None:
                due.append((agent, scheduled_run(agent, agent_config, scheduled)))
        if due:
            runs = client.batch_trigger([request for _, request in due], source="schedule")
            started.extend(
                {
                    "agentId": agent.id,
                    "workspaceId": agent.workspace_id,
                    "scheduledTime": request.payload["inputs"]["scheduledTime"],
                    "runId": run.id,
                    "deduplicated": run.deduplicated,
                }
                for (agent, request), run in zip(due, runs, strict=True)
            )
        cursor = page.cursor
        if cursor is None:
            break
    return {
        "count": count,
        "agents": listed,
        "listedAll": count <= MAX_LISTED,
        "scheduledRuns": started,
        "started": sum(1 for run in started if not run["deduplicated"]),
        "scheduleErrors": schedule_errors,
    }
