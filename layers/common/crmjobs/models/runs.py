"""The run ledger's records, the trigger idempotency guard and the concurrency slots."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from crmjobs.models.base import table_meta


class _RunIndex(GlobalSecondaryIndex):
    class Meta:
        projection = AllProjection()


class RunsByWorkspace(_RunIndex):
    class Meta(_RunIndex.Meta):
        index_name = "workspace-index"

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    created_at = UnicodeAttribute(range_key=True, attr_name="createdAt")


class RunsByWorkspaceTask(_RunIndex):
    class Meta(_RunIndex.Meta):
        index_name = "workspace-task-index"

    workspace_task = UnicodeAttribute(hash_key=True, attr_name="workspaceTask")
    created_at = UnicodeAttribute(range_key=True, attr_name="createdAt")


class RunsByWorkspaceStatus(_RunIndex):
    class Meta(_RunIndex.Meta):
        index_name = "workspace-status-index"

    workspace_status = UnicodeAttribute(hash_key=True, attr_name="workspaceStatus")
    created_at = UnicodeAttribute(range_key=True, attr_name="createdAt")


class Run(Model):
    """One triggered run of a task. Timestamps are ISO-8601 UTC text so they sort in indexes."""

    Meta = table_meta("RUNS_TABLE")

    id = UnicodeAttribute(hash_key=True)
    task = UnicodeAttribute()
    workspace_id = UnicodeAttribute(attr_name="workspaceId")
    workspace_task = UnicodeAttribute(attr_name="workspaceTask")
    workspace_status = UnicodeAttribute(attr_name="workspaceStatus")
    status = UnicodeAttribute()
    payload = JSONAttribute()
    attempts = NumberAttribute(default=0)
    max_attempts = NumberAttribute(attr_name="maxAttempts")
    output = JSONAttribute(null=True)
    error = JSONAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    idempotency_key = UnicodeAttribute(null=True, attr_name="idempotencyKey")
    source = UnicodeAttribute(default="client")
    replay_of = UnicodeAttribute(null=True, attr_name="replayOf")
    #: A plain message's run: the message that recorded it.
    message_id = UnicodeAttribute(null=True, attr_name="messageId")
    #: The run that triggered this one and sums what its runs did (the nightly job's page).
    parent_run_id = UnicodeAttribute(null=True, attr_name="parentRunId")
    #: On such a parent: its finished runs' counts (runsFinished, processed, changed, ...).
    child_totals = MapAttribute(null=True, attr_name="childTotals")
    schedule_name = UnicodeAttribute(null=True, attr_name="scheduleName")
    execution = UnicodeAttribute(null=True)
    #: The state machine of `execution`, when canceling the run may stop it.
    state_machine = UnicodeAttribute(null=True, attr_name="stateMachine")
    #: Set when someone asks an executing run to stop; its service checks it between units.
    cancel_requested = BooleanAttribute(null=True, attr_name="cancelRequested")
    run_at = UnicodeAttribute(null=True, attr_name="runAt")
    created_at = UnicodeAttribute(attr_name="createdAt")
    updated_at = UnicodeAttribute(attr_name="updatedAt")
    started_at = UnicodeAttribute(null=True, attr_name="startedAt")
    finished_at = UnicodeAttribute(null=True, attr_name="finishedAt")
    expires_at = TTLAttribute(null=True, attr_name="expiresAt")

    by_workspace = RunsByWorkspace()
    by_workspace_task = RunsByWorkspaceTask()
    by_workspace_status = RunsByWorkspaceStatus()


class TriggerKey(Model):
    """Idempotency guard of a trigger: (task, workspace, key) -> the run it created.

    Kept in the idempotency table (hash key `id`, TTL `expiration`) for its TTL.
    """

    Meta = table_meta("IDEMPOTENCY_TABLE")

    id = UnicodeAttribute(hash_key=True)
    run_id = UnicodeAttribute(attr_name="runId")
    expiration = TTLAttribute()

    @staticmethod
    def key_for(task: str, workspace_id: str, idempotency_key: str) -> str:
        return f"trigger#{task}#{workspace_id}#{idempotency_key}"


class ConcurrencySlots(Model):
    """Runs executing now in one workspace: holders maps run id -> lease expiry (epoch s)."""

    Meta = table_meta("CONCURRENCY_TABLE")

    id = UnicodeAttribute(hash_key=True)
    holders = MapAttribute(default=dict)
