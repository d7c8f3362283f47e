"""Agent executions and their transcripts: the execution record (running, then completed,
failed or cancelled, each transition conditional on it still running), its rounds saved as
they happen, its tool calls keyed by toolUseId, and the health check's queries (running
executions by start time, executions by the hour they started, an agent's latest ones)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pynamodb.connection import Connection
from pynamodb.constants import STRING
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.operand import Path
from pynamodb.transactions import TransactWrite

from crmjobs.errors import Conflict
from crmjobs.models import Agent, AgentExecution, ExecutionRound, ToolCallRecord
from crmjobs.models.agents import RUNNING_SHARD
from crmjobs.stores.dynamodb import CONDITION_FAILED, conflict_on_failed_condition


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hour_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


def execution_key(execution: AgentExecution) -> str:
    return f"{execution.workspace_id}#{execution.id}"


def find(workspace_id: str, execution_id: str) -> AgentExecution | None:
    return AgentExecution.get_in_workspace(workspace_id, execution_id, consistent_read=True)


def create_running(execution: AgentExecution, started: datetime) -> None:
    """Record the execution as running; Conflict when it already exists."""
    execution.status = "running"
    execution.started_at = iso(started)
    execution.started_hour = hour_of(started)
    execution.running_shard = RUNNING_SHARD
    execution.updated_at = started
    with conflict_on_failed_condition(f"execution {execution.id} exists"):
        execution.save(condition=AgentExecution.id.does_not_exist())


def _finish_actions(
    status: str,
    now: datetime,
    *,
    output: Any = None,
    error: dict[str, str] | None = None,
    tokens: dict[str, int] | None = None,
    rounds: int | None = None,
) -> list[Any]:
    actions = [
        AgentExecution.status.set(status),
        AgentExecution.running_shard.remove(),
        AgentExecution.completed_at.set(now),
        AgentExecution.updated_at.set(now),
    ]
    if output is not None:
        actions.append(AgentExecution.output.set(output))
        actions.append(AgentExecution.duration_ms.set(output.get("durationMs")))
    if error is not None:
        actions.append(AgentExecution.error.set(error))
    if tokens is not None:
        actions.append(AgentExecution.tokens_used.set(tokens))
    if rounds is not None:
        actions.append(AgentExecution.rounds.set(rounds))
    return actions


_STILL_RUNNING = AgentExecution.status == "running"


def finish(
    execution: AgentExecution,
    status: str,
    now: datetime,
    *,
    output: Any = None,
    error: dict[str, str] | None = None,
    tokens: dict[str, int] | None = None,
    rounds: int | None = None,
) -> None:
    """Running -> status; Conflict when it is no longer running (cancelled, marked stuck)."""
    with conflict_on_failed_condition(f"execution {execution.id} is no longer running"):
        execution.update(
            actions=_finish_actions(
                status, now, output=output, error=error, tokens=tokens, rounds=rounds
            ),
            condition=_STILL_RUNNING,
        )


def complete_and_count(
    execution: AgentExecution,
    agent: Agent,
    now: datetime,
    *,
    output: Any,
    tokens: dict[str, int],
    rounds: int,
) -> None:
    """Completed, and the agent's executionCount +1 and lastExecutedAt, in one transaction:
    the count moves exactly once per execution. Conflict when the execution is no longer
    running (or the agent was deleted).

    A count another app stored as text ("5") cannot take DynamoDB's ADD: it is then set to
    the number it reads plus one, on condition that it is still text, so of two executions
    finishing at once the second finds a number and adds to it."""
    finished = _finish_actions("completed", now, output=output, tokens=tokens, rounds=rounds)
    count_text = False
    while True:
        if count_text:
            stored = Agent.get_in_workspace(agent.workspace_id, agent.id, consistent_read=True)
            if stored is None:
                raise Conflict(f"agent {agent.id} is gone")
            count = Agent.execution_count.set(int(stored.execution_count or 0) + 1)
            still = Path(Agent.execution_count.attr_name).is_type(STRING)
        else:
            count, still = Agent.execution_count.add(1), Agent.id.exists()
        try:
            with TransactWrite(connection=Connection(region=AgentExecution.Meta.region)) as write:
                write.update(execution, actions=finished, condition=_STILL_RUNNING)
                write.update(
                    agent, actions=[count, Agent.last_executed_at.set(now)], condition=still
                )
            return
        except TransactWriteError as exc:
            if exc.cause_response_code == "ValidationException" and not count_text:
                count_text = True  # ADD refused: the stored count is not a number
                continue
            codes = [reason.code if reason else None for reason in exc.cancellation_reasons or []]
            if count_text and codes[:2] == [None, CONDITION_FAILED]:
                count_text = False  # another execution made it a number: add to it
                continue
            if CONDITION_FAILED in codes:
                raise Conflict(
                    f"execution {execution.id} is no longer running, or its agent is gone"
                ) from None
            raise


# --- the transcript --------------------------------------------------------------------


def rounds_of(execution: AgentExecution) -> list[ExecutionRound]:
    """The saved rounds, in order (a consistent read: a retry sees what the crash left)."""
    return list(
        ExecutionRound.query(
            execution_key(execution),
            ExecutionRound.step.startswith(ExecutionRound.PREFIX),
            consistent_read=True,
        )
    )


def save_turn(execution: AgentExecution, saved: ExecutionRound) -> None:
    """Save a round's model turn; Conflict if that round was saved already."""
    saved.execution_key = execution_key(execution)
    saved.step = ExecutionRound.step_of(int(saved.number))
    with conflict_on_failed_condition(f"round {saved.number} is saved already"):
        saved.save(condition=ExecutionRound.step.does_not_exist())


def save_reply(saved: ExecutionRound, reply: list[dict[str, Any]]) -> None:
    """Save the message that answers a round's turn (its tool results)."""
    saved.update(actions=[ExecutionRound.reply.set(reply)])


def tool_calls_of(execution: AgentExecution) -> dict[str, ToolCallRecord]:
    """The execution's recorded tool calls by toolUseId."""
    return {
        record.tool_use_id: record
        for record in ToolCallRecord.query(
            execution_key(execution),
            ToolCallRecord.step.startswith(ToolCallRecord.PREFIX),
            consistent_read=True,
        )
    }


def record_tool_call(
    execution: AgentExecution,
    round_number: int,
    call_id: str,
    name: str,
    tool_input: Any,
    *,
    status: str,
    duration_ms: int,
    now: datetime,
    result: Any = None,
    error: str | None = None,
) -> ToolCallRecord:
    """Record a call that ran (after it ran: a crash before this write runs it again, and
    the tools are idempotent by toolUseId); Conflict when it was recorded already."""
    record = ToolCallRecord(
        execution_key(execution),
        ToolCallRecord.step_of(call_id),
        tool_use_id=call_id,
        round_number=round_number,
        name=name,
        input=tool_input,
        status=status,
        result=result,
        error=error,
        duration_ms=duration_ms,
        completed_at=now,
    )
    with conflict_on_failed_condition(f"tool call {call_id} is recorded already"):
        record.save(condition=ToolCallRecord.step.does_not_exist())
    return record


# --- health check queries --------------------------------------------------------------


def running_started_before(cutoff: datetime) -> Iterator[AgentExecution]:
    """Running executions that started before `cutoff` (the sparse running index)."""
    return AgentExecution.running.query(RUNNING_SHARD, AgentExecution.started_at < iso(cutoff))


def started_since(since: datetime, until: datetime) -> Iterator[AgentExecution]:
    """Executions that started between `since` and `until`, through the hour index."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        yield from AgentExecution.by_hour.query(
            hour_of(hour),
            AgentExecution.started_at.between(iso(since), iso(until)),
        )
        hour += timedelta(hours=1)


def latest_of_agent(workspace_id: str, agent_id: str, count: int) -> list[AgentExecution]:
    """The agent's latest `count` executions, newest first."""
    return list(
        AgentExecution.by_agent.query(
            AgentExecution.key_of_agent(workspace_id, agent_id),
            scan_index_forward=False,
            limit=count,
            page_size=count,
        )
    )


def mark_stuck(execution: AgentExecution, message: str, now: datetime) -> bool:
    """Failed with code "stuck", if it is still running; False otherwise."""
    try:
        finish(execution, "failed", now, error={"message": message, "code": "stuck"})
    except Conflict:
        return False
    return True
