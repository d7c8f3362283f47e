"""scheduled-agent-health-check (hourly): figures on the agents and what they did in the
last hour, and two repairs.

- Executions still running past execute-agent's timeout times its attempts (no attempt can
  still be at work on them) are marked failed, code "stuck".
- An active agent whose last AGENT_AUTO_PAUSE_AFTER_FAILURES (default 5) executions all
  failed is paused, with the reason. Agents are looked at when one of their executions
  failed in the hour checked (each failure falls in some hourly check).

The figures are saved as a health record keyed by the scheduled time (a retried check
overwrites its own record) and emitted as metrics.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from crmjobs import config
from crmjobs.domain.schedule_expressions import format_scheduled_time
from crmjobs.errors import NotFound
from crmjobs.models import AgentExecution, AgentHealthRecord
from crmjobs.models.agents import AGENT_STATUSES, EXECUTION_STATUSES
from crmjobs.observability import emit_metric
from crmjobs.runtime import RunContext
from crmjobs.schemas import ScheduledAgentHealthCheckPayload
from crmjobs.stores import agents as agent_store
from crmjobs.stores import executions as store
from crmjobs.tasks import TASK_TIMEOUT_SECONDS, get_task

TASK = "scheduled-agent-health-check"
DEFAULT_PAUSE_AFTER_FAILURES = 5
RECORD_RETENTION = timedelta(days=90)
HEALTH_SCOPE = "agents"


def stuck_after() -> timedelta:
    """No attempt of execute-agent can still be running an execution this old."""
    return timedelta(seconds=TASK_TIMEOUT_SECONDS * get_task("execute-agent").attempts)


def _mark_stuck(now: datetime) -> list[AgentExecution]:
    limit = stuck_after()
    message = (
        f"stuck: still running {int(limit.total_seconds())} s after it started "
        "(execute-agent's timeout times its attempts)"
    )
    return [
        execution
        for execution in store.running_started_before(now - limit)
        if store.mark_stuck(execution, message, now)
    ]


def _agent_figures() -> tuple[dict[str, int], int]:
    """Agents by status (all of them, through the status index), and their executions."""
    by_status: dict[str, int] = {}
    executions = 0
    for status in AGENT_STATUSES:
        cursor, count = None, 0
        while True:
            page = agent_store.with_status_page(status, cursor, 500)
            count += len(page.items)
            executions += sum(int(agent.execution_count or 0) for agent in page.items)
            cursor = page.cursor
            if cursor is None:
                break
        by_status[status] = count
    return by_status, executions


def _pause_failing(
    failed: list[AgentExecution], marked_stuck: set[tuple[str, str]], threshold: int, now: datetime
) -> list[dict[str, str]]:
    """Pause each active agent among those of `failed` whose last `threshold` executions
    (test runs aside) all failed; an execution marked stuck just now counts as failed
    (the index may not show it yet)."""
    paused = []
    agents = dict.fromkeys(
        (execution.workspace_id, execution.agent_id)
        for execution in failed
        if not execution.test_run
    )
    for workspace_id, agent_id in agents:
        latest = [
            execution
            for execution in store.latest_of_agent(workspace_id, agent_id, threshold * 2)
            if not execution.test_run
        ][:threshold]
        if len(latest) < threshold or any(
            execution.status != "failed"
            and (execution.workspace_id, execution.id) not in marked_stuck
            for execution in latest
        ):
            continue
        last_error = (latest[0].error or {}).get("message") or "stuck"
        reason = (
            f"paused by the health check: its last {threshold} executions failed "
            f"(latest: {last_error})"
        )[:1000]
        try:
            agent = agent_store.get(workspace_id, agent_id)
        except NotFound:
            continue
        if agent_store.pause(agent, reason, now):
            paused.append({"workspaceId": workspace_id, "agentId": agent_id, "reason": reason})
    return paused


def scheduled_agent_health_check(
    payload: ScheduledAgentHealthCheckPayload, context: RunContext, now: datetime | None = None
) -> dict[str, Any]:
    now = (payload.scheduledTime or now or datetime.now(UTC)).astimezone(UTC)
    threshold = config.int_setting("AGENT_AUTO_PAUSE_AFTER_FAILURES", DEFAULT_PAUSE_AFTER_FAILURES)
    stuck = _mark_stuck(now)

    last_hour = list(store.started_since(now - timedelta(hours=1), now))
    by_status = Counter(execution.status for execution in last_hour)
    durations = [int(e.duration_ms) for e in last_hour if e.duration_ms is not None]
    tokens = [
        int((e.tokens_used or {}).get("total", 0)) for e in last_hour if e.status == "completed"
    ]
    marked_stuck = {(e.workspace_id, e.id) for e in stuck}
    failed = [
        e for e in last_hour if e.status == "failed" and (e.workspace_id, e.id) not in marked_stuck
    ]
    paused = _pause_failing([*failed, *stuck], marked_stuck, threshold, now)
    agents_by_status, total_executions = _agent_figures()  # after the pauses

    figures = {
        "checkedAt": format_scheduled_time(now),
        "agentsByStatus": agents_by_status,
        "totalExecutions": total_executions,
        "lastHour": {
            "executions": len(last_hour),
            "byStatus": {status: by_status.get(status, 0) for status in EXECUTION_STATUSES},
            "meanDurationMs": round(sum(durations) / len(durations)) if durations else None,
            "meanTokens": round(sum(tokens) / len(tokens)) if tokens else None,
        },
        "stuckMarkedFailed": [
            {"workspaceId": e.workspace_id, "executionId": e.id, "agentId": e.agent_id}
            for e in stuck
        ],
        "autoPaused": paused,
        "autoPauseAfterFailures": threshold,
    }
    AgentHealthRecord(
        HEALTH_SCOPE,
        figures["checkedAt"],
        figures=figures,
        expires_at=now + RECORD_RETENTION,
    ).save()
    _emit(figures)
    return figures


def _emit(figures: dict[str, Any]) -> None:
    for status, count in figures["agentsByStatus"].items():
        emit_metric(f"Agents{status.capitalize()}", TASK, count)
    emit_metric("AgentExecutionsTotal", TASK, figures["totalExecutions"])
    hour = figures["lastHour"]
    for status, count in hour["byStatus"].items():
        emit_metric(f"AgentExecutionsLastHour{status.capitalize()}", TASK, count)
    if hour["meanDurationMs"] is not None:
        emit_metric(
            "AgentExecutionMeanDuration", TASK, hour["meanDurationMs"], MetricUnit.Milliseconds
        )
    if hour["meanTokens"] is not None:
        emit_metric("AgentExecutionMeanTokens", TASK, hour["meanTokens"])
    emit_metric("AgentExecutionsStuck", TASK, len(figures["stuckMarkedFailed"]))
    emit_metric("AgentsAutoPaused", TASK, len(figures["autoPaused"]))
