"""The agents' tables: agents, their executions, each execution's saved rounds and tool
calls, the meetings of the calendar tools, and the hourly health records.

Timestamps that indexes sort on are ISO-8601 UTC text (`...Z`).
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, LocalSecondaryIndex
from pynamodb.models import Model

from crmjobs.models.base import WorkspaceScoped, table_meta, utcnow

AGENT_STATUSES = ("draft", "active", "paused", "archived")
EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
RUNNING_SHARD = "running"


class AgentsByStatusIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "status-index"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class Agent(WorkspaceScoped):
    Meta = table_meta("AGENTS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    type = UnicodeAttribute(default="assistant")
    status = UnicodeAttribute(default="draft")
    #: Why the agent has its status (e.g. paused by the health check).
    status_reason = UnicodeAttribute(null=True, attr_name="statusReason")
    config = JSONAttribute(null=True)
    execution_count = NumberAttribute(default=0, attr_name="executionCount")
    last_executed_at = UTCDateTimeAttribute(null=True, attr_name="lastExecutedAt")
    created_by = UnicodeAttribute(null=True, attr_name="createdBy")
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")
    status_index = AgentsByStatusIndex()


class ExecutionsByAgentIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "agent-index"
        projection = AllProjection()

    agent_key = UnicodeAttribute(hash_key=True, attr_name="agentKey")
    started_at = UnicodeAttribute(range_key=True, attr_name="startedAt")


class RunningExecutionsIndex(GlobalSecondaryIndex):
    """Sparse: only running executions carry runningShard (the health check's stuck scan)."""

    class Meta:
        index_name = "running-index"
        projection = AllProjection()

    running_shard = UnicodeAttribute(hash_key=True, attr_name="runningShard")
    started_at = UnicodeAttribute(range_key=True, attr_name="startedAt")


class ExecutionsByHourIndex(GlobalSecondaryIndex):
    """Executions by the hour they started in (the health check's last hour)."""

    class Meta:
        index_name = "hour-index"
        projection = AllProjection()

    started_hour = UnicodeAttribute(hash_key=True, attr_name="startedHour")
    started_at = UnicodeAttribute(range_key=True, attr_name="startedAt")


class AgentExecution(WorkspaceScoped):
    Meta = table_meta("EXECUTIONS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    agent_id = UnicodeAttribute(attr_name="agentId")
    #: workspaceId#agentId, the agent-index's key.
    agent_key = UnicodeAttribute(attr_name="agentKey")
    run_id = UnicodeAttribute(null=True, attr_name="runId")
    triggered_by = UnicodeAttribute(null=True, attr_name="triggeredBy")
    test_run = BooleanAttribute(default=False, attr_name="testRun")
    status = UnicodeAttribute(default="pending")
    input = JSONAttribute(null=True)
    #: What the execution runs with, fixed when it starts so a resumed attempt goes on with
    #: the same prompt, tools, model and limits: {system, userMessage, tools, model,
    #: scripted, maxTokens, temperature, tokenBudget}.
    plan = JSONAttribute(null=True)
    output = JSONAttribute(null=True)
    error = JSONAttribute(null=True)
    duration_ms = NumberAttribute(null=True, attr_name="durationMs")
    #: {input, output, total}
    tokens_used = JSONAttribute(null=True, attr_name="tokensUsed")
    rounds = NumberAttribute(default=0)
    started_at = UnicodeAttribute(attr_name="startedAt")
    started_hour = UnicodeAttribute(attr_name="startedHour")
    running_shard = UnicodeAttribute(null=True, attr_name="runningShard")
    completed_at = UTCDateTimeAttribute(null=True, attr_name="completedAt")
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")
    by_agent = ExecutionsByAgentIndex()
    running = RunningExecutionsIndex()
    by_hour = ExecutionsByHourIndex()

    @staticmethod
    def key_of_agent(workspace_id: str, agent_id: str) -> str:
        return f"{workspace_id}#{agent_id}"


class ExecutionRound(Model):
    """One round of an execution, saved as it happens: the model's turn, then the reply
    (tool results) once its tools ran. Keyed (workspaceId#executionId, round#NNN)."""

    Meta = table_meta("EXECUTION_STEPS_TABLE")

    execution_key = UnicodeAttribute(hash_key=True, attr_name="executionKey")
    step = UnicodeAttribute(range_key=True)
    number = NumberAttribute()
    assistant = JSONAttribute()
    stop_reason = UnicodeAttribute(attr_name="stopReason")
    input_tokens = NumberAttribute(attr_name="inputTokens")
    output_tokens = NumberAttribute(attr_name="outputTokens")
    tool_round = BooleanAttribute(default=False, attr_name="toolRound")
    reply = JSONAttribute(null=True)
    model = UnicodeAttribute(null=True)
    latency_ms = NumberAttribute(null=True, attr_name="latencyMs")
    created_at = UTCDateTimeAttribute(default=utcnow, attr_name="createdAt")

    PREFIX = "round#"

    @classmethod
    def step_of(cls, number: int) -> str:
        return f"{cls.PREFIX}{number:03d}"


class ToolCallRecord(Model):
    """One tool call of an execution that ran, keyed (workspaceId#executionId,
    tool#toolUseId): a retry finds it and reuses its result instead of running it again."""

    Meta = table_meta("EXECUTION_STEPS_TABLE")

    execution_key = UnicodeAttribute(hash_key=True, attr_name="executionKey")
    step = UnicodeAttribute(range_key=True)
    tool_use_id = UnicodeAttribute(attr_name="toolUseId")
    round_number = NumberAttribute(attr_name="round")
    name = UnicodeAttribute()
    input = JSONAttribute(null=True)
    #: success or error (what the model got back)
    status = UnicodeAttribute()
    result = JSONAttribute(null=True)
    error = UnicodeAttribute(null=True)
    duration_ms = NumberAttribute(attr_name="durationMs")
    completed_at = UTCDateTimeAttribute(attr_name="completedAt")

    PREFIX = "tool#"

    @classmethod
    def step_of(cls, tool_use_id: str) -> str:
        return f"{cls.PREFIX}{tool_use_id}"


class MeetingsByStartIndex(LocalSecondaryIndex):
    class Meta:
        index_name = "starts-index"
        projection = AllProjection()

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    starts_at = UnicodeAttribute(range_key=True, attr_name="startsAt")


class Meeting(WorkspaceScoped):
    """A meeting in the workspace's calendar (the agents' calendar tools)."""

    Meta = table_meta("MEETINGS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    title = UnicodeAttribute()
    starts_at = UnicodeAttribute(attr_name="startsAt")
    ends_at = UnicodeAttribute(attr_name="endsAt")
    attendees = ListAttribute(of=UnicodeAttribute, default=list)
    prospect_id = UnicodeAttribute(null=True, attr_name="prospectId")
    contact_id = UnicodeAttribute(null=True, attr_name="contactId")
    notes = UnicodeAttribute(null=True)
    #: "agent:<id>" or a user id
    created_by = UnicodeAttribute(null=True, attr_name="createdBy")
    created_at = UTCDateTimeAttribute(default=utcnow, attr_name="createdAt")
    updated_at = UTCDateTimeAttribute(default=utcnow, attr_name="updatedAt")
    by_start = MeetingsByStartIndex()


class AgentHealthRecord(Model):
    """The figures of one hourly agent health check, keyed by its scheduled time."""

    Meta = table_meta("AGENT_HEALTH_TABLE")

    scope = UnicodeAttribute(hash_key=True)
    checked_at = UnicodeAttribute(range_key=True, attr_name="checkedAt")
    figures = JSONAttribute()
    expires_at = TTLAttribute(attr_name="expiresAt")
