"""The agents' tables: agents, their executions, each execution's saved rounds and tool
calls, the meetings of the calendar tools, and the hourly health records.

Agents, executions and meetings are the CRM's entities, written by its app too: their
timestamps and numbers are read in the forms other apps write (models/base.py), one read
whole must have its required fields, and createdAt/updatedAt are set on new records only.
Timestamps that indexes sort on are ISO-8601 UTC text (`...Z`).
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, LocalSecondaryIndex
from pynamodb.models import Model

from crmjobs.models.base import (
    Number,
    Timestamp,
    WorkspaceScoped,
    index_meta,
    table_meta,
    utcnow,
)

AGENT_STATUSES = ("draft", "active", "paused", "archived")
EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
RUNNING_SHARD = "running"


class AgentsByStatusIndex(GlobalSecondaryIndex):
    Meta = index_meta("status-index")

    status = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class Agent(WorkspaceScoped):
    Meta = table_meta("AGENTS_TABLE")
    complete_on_get = True

    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    type = UnicodeAttribute(default="assistant")
    status = UnicodeAttribute(default="draft")
    #: Why the agent has its status (e.g. paused by the health check).
    status_reason = UnicodeAttribute(null=True, attr_name="statusReason")
    config = JSONAttribute(null=True)
    execution_count = Number(default=0, attr_name="executionCount")
    last_executed_at = Timestamp(null=True, attr_name="lastExecutedAt")
    created_by = UnicodeAttribute(null=True, attr_name="createdBy")
    updated_at = Timestamp(null=True, attr_name="updatedAt")
    status_index = AgentsByStatusIndex()


def _executions_by_start(index_name: str, partition: str, attr_name: str) -> GlobalSecondaryIndex:
    """An index of the executions table: a partition key, sorted by start (ISO-8601 text)."""
    attributes = {
        "Meta": index_meta(index_name),
        partition: UnicodeAttribute(hash_key=True, attr_name=attr_name),
        "started_at": UnicodeAttribute(range_key=True, attr_name="startedAt"),
    }
    name = f"ExecutionsBy{attr_name[:1].upper()}{attr_name[1:]}Index"
    return type(name, (GlobalSecondaryIndex,), attributes)()


class AgentExecution(WorkspaceScoped):
    Meta = table_meta("EXECUTIONS_TABLE")
    complete_on_get = True

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
    duration_ms = Number(null=True, attr_name="durationMs")
    #: {input, output, total}
    tokens_used = JSONAttribute(null=True, attr_name="tokensUsed")
    rounds = Number(default=0)
    started_at = UnicodeAttribute(attr_name="startedAt")
    started_hour = UnicodeAttribute(attr_name="startedHour")
    running_shard = UnicodeAttribute(null=True, attr_name="runningShard")
    completed_at = Timestamp(null=True, attr_name="completedAt")
    updated_at = Timestamp(null=True, attr_name="updatedAt")
    by_agent = _executions_by_start("agent-index", "agent_key", "agentKey")
    #: Sparse: only running executions carry runningShard (the health check's stuck scan).
    running = _executions_by_start("running-index", "running_shard", "runningShard")
    #: By the hour they started in (the health check's last hour).
    by_hour = _executions_by_start("hour-index", "started_hour", "startedHour")

    @staticmethod
    def key_of_agent(workspace_id: str, agent_id: str) -> str:
        return f"{workspace_id}#{agent_id}"


class ExecutionRound(Model):
    """One round of an execution, saved as it happens: the model's turn, then the reply
    (tool results) once its tools ran. Keyed (workspaceId#executionId, round#NNN)."""

    Meta = table_meta("EXECUTION_STEPS_TABLE")

    execution_key = UnicodeAttribute(hash_key=True, attr_name="executionKey")
    step = UnicodeAttribute(range_key=True)
    number = Number()
    assistant = JSONAttribute()
    stop_reason = UnicodeAttribute(attr_name="stopReason")
    input_tokens = Number(attr_name="inputTokens")
    output_tokens = Number(attr_name="outputTokens")
    tool_round = BooleanAttribute(default=False, attr_name="toolRound")
    reply = JSONAttribute(null=True)
    model = UnicodeAttribute(null=True)
    latency_ms = Number(null=True, attr_name="latencyMs")
    created_at = Timestamp(default=utcnow, attr_name="createdAt")

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
    round_number = Number(attr_name="round")
    name = UnicodeAttribute()
    input = JSONAttribute(null=True)
    #: success or error (what the model got back)
    status = UnicodeAttribute()
    result = JSONAttribute(null=True)
    error = UnicodeAttribute(null=True)
    duration_ms = Number(attr_name="durationMs")
    completed_at = Timestamp(attr_name="completedAt")

    PREFIX = "tool#"

    @classmethod
    def step_of(cls, tool_use_id: str) -> str:
        return f"{cls.PREFIX}{tool_use_id}"


class MeetingsByStartIndex(LocalSecondaryIndex):
    Meta = index_meta("starts-index")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    starts_at = UnicodeAttribute(range_key=True, attr_name="startsAt")


class Meeting(WorkspaceScoped):
    """A meeting in the workspace's calendar (the agents' calendar tools)."""

    Meta = table_meta("MEETINGS_TABLE")
    complete_on_get = True

    title = UnicodeAttribute()
    starts_at = UnicodeAttribute(attr_name="startsAt")
    ends_at = UnicodeAttribute(attr_name="endsAt")
    attendees = ListAttribute(of=UnicodeAttribute, default=list)
    prospect_id = UnicodeAttribute(null=True, attr_name="prospectId")
    contact_id = UnicodeAttribute(null=True, attr_name="contactId")
    notes = UnicodeAttribute(null=True)
    #: "agent:<id>" or a user id
    created_by = UnicodeAttribute(null=True, attr_name="createdBy")
    created_at = Timestamp(null=True, default_for_new=utcnow, attr_name="createdAt")
    updated_at = Timestamp(null=True, default_for_new=utcnow, attr_name="updatedAt")
    by_start = MeetingsByStartIndex()


class AgentHealthRecord(Model):
    """The figures of one hourly agent health check, keyed by its scheduled time."""

    Meta = table_meta("AGENT_HEALTH_TABLE")

    scope = UnicodeAttribute(hash_key=True)
    checked_at = UnicodeAttribute(range_key=True, attr_name="checkedAt")
    figures = JSONAttribute()
    expires_at = TTLAttribute(attr_name="expiresAt")
