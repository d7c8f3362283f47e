"""Strict pydantic payload models, one per task, and their exported JSON Schemas.

Unknown fields are rejected, ids are validated and timestamps must be ISO-8601 with a
timezone, so a bad message fails at once with a clear error instead of deep in a task.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
)

from crmjobs.errors import InvalidInput
from crmjobs.tasks import SYSTEM_WORKSPACE, get_task

#: Ids of workspaces and records: no leading underscore (reserved for "_system") and no
#: ":" (the separator of the index's chunk ids).
EntityId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


def _not_a_number(value: Any) -> Any:
    """Pydantic reads a number, or text of digits, as an epoch: neither is ISO-8601."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("must be ISO-8601 text with a timezone, not a number")
    return value


#: A day inside datetime's range at each end, so the instant has a local time in every zone.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def _in_every_zone(value: datetime) -> datetime:
    """An instant the tasks can convert to UTC and to any time zone (the first and last day
    datetime can hold cannot: `astimezone` overflows)."""
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not _EARLIEST <= instant <= _LATEST:
        raise ValueError(
            f"must be between {_EARLIEST.date().isoformat()} and "
            f"{_LATEST.date().isoformat()} (UTC)"
        )
    return value


#: ISO-8601 text with a timezone (pydantic alone would also read a number as an epoch).
Timestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_in_every_zone)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def run_workspace(self) -> str:
        """The workspace a run of this payload belongs to (system-wide tasks: `_system`)."""
        return getattr(self, "workspaceId", None) or SYSTEM_WORKSPACE


class ScoreLeadPayload(Payload):
    workspaceId: EntityId
    prospectId: EntityId


class BulkScoreLeadsPayload(Payload):
    workspaceId: EntityId


class ScheduledLeadScoringPayload(Payload):
    scheduledTime: Timestamp | None = None
    #: The next page of active workspaces starts after this one (the job sends itself
    #: one message per page); absent for the first page.
    afterWorkspaceId: EntityId | None = None


class IndexDocumentPayload(Payload):
    workspaceId: EntityId
    itemId: EntityId


class BulkIndexDocumentsPayload(Payload):
    workspaceId: EntityId
    force: StrictBool = False


class ReindexAllDocumentsPayload(Payload):
    workspaceId: EntityId


class SendCampaignPayload(Payload):
    workspaceId: EntityId
    campaignId: EntityId
    #: Set by schedule-campaign's schedule: send only if still scheduled for this time.
    scheduledFor: Timestamp | None = None


class ScheduleCampaignPayload(Payload):
    workspaceId: EntityId
    campaignId: EntityId
    scheduledFor: Timestamp


class ExecuteAgentPayload(Payload):
    workspaceId: EntityId
    agentId: EntityId
    inputs: dict[str, Any] = Field(default_factory=dict)
    triggeredBy: EntityId | None = None
    testRun: StrictBool = False


class ProcessActiveAgentsPayload(Payload):
    workspaceId: EntityId | None = None
    #: The firing's time (its schedule sends it): which agent schedules are due.
    scheduledTime: Timestamp | None = None


class ScheduledAgentHealthCheckPayload(Payload):
    scheduledTime: Timestamp | None = None


PAYLOAD_MODELS: dict[str, type[Payload]] = {
    "score-lead": ScoreLeadPayload,
    "bulk-score-leads": BulkScoreLeadsPayload,
    "scheduled-lead-scoring": ScheduledLeadScoringPayload,
    "index-document": IndexDocumentPayload,
    "bulk-index-documents": BulkIndexDocumentsPayload,
    "reindex-all-documents": ReindexAllDocumentsPayload,
    "send-campaign": SendCampaignPayload,
    "schedule-campaign": ScheduleCampaignPayload,
    "execute-agent": ExecuteAgentPayload,
    "process-active-agents": ProcessActiveAgentsPayload,
    "scheduled-agent-health-check": ScheduledAgentHealthCheckPayload,
}


def parse_payload(task: str, data: Any) -> Payload:
    """Validate a payload (dict or JSON text); raise InvalidInput with every problem named."""
    model = PAYLOAD_MODELS[get_task(task).name]
    try:
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(f"invalid {task} payload: {problems}") from None


def payload_json(payload: Payload) -> dict[str, Any]:
    return payload.model_dump(mode="json", exclude_none=True)


def payload_schema(task: str) -> dict[str, Any]:
    schema = PAYLOAD_MODELS[get_task(task).name].model_json_schema()
    schema["title"] = f"{task} payload"
    return schema


def schema_text(task: str) -> str:
    return json.dumps(payload_schema(task), indent=2)
