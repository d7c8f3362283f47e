"""What the agents' tools write and list beyond the other stores: new records (prospects,
contacts, knowledge items, meetings) and the workspace's leads, in the agent's workspace
only.

A tool call creates its record under an id derived from the call (execution and toolUseId),
with a conditional put: a retried call finds the record it created instead of creating a
second one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from pynamodb.models import Model
from pynamodb.pagination import ResultIterator

from crmjobs.errors import Conflict
from crmjobs.models import Prospect
from crmjobs.stores.dynamodb import conflict_on_failed_condition

T = TypeVar("T", bound=Model)

#: What the lead tools read of a prospect (the keys too, for PynamoDB's cursors).
LEAD_FIELDS = [
    "workspaceId",
    "id",
    "name",
    "email",
    "company",
    "title",
    "stage",
    "score",
    "estimatedValue",
]


def create_once(record: T) -> tuple[T, bool]:
    """Save a new record keyed (workspaceId, id); (the stored record, created). One that
    exists already under that id is returned as stored (an earlier try of the same call)."""
    model = type(record)
    try:
        with conflict_on_failed_condition(f"{model.__name__} {record.id} exists"):
            record.save(condition=model.id.does_not_exist())
    except Conflict:
        return model.get(record.workspace_id, record.id, consistent_read=True), False
    return record, True


def leads(workspace_id: str, *, most: int, fields: list[str] | None = None) -> ResultIterator:
    """The workspace's prospects from its partition, at most `most` of them, with `fields`
    only; once iterated, the query's `last_evaluated_key` says whether some were left."""
    return Prospect.query(
        workspace_id,
        attributes_to_get=fields or LEAD_FIELDS,
        limit=most,
        page_size=min(most, 1000),
    )


def set_stage(found: Prospect, stage: str, now: datetime) -> None:
    """The prospect's new stage over the version that was read (PynamoDB checks it);
    Conflict when it was edited or deleted meanwhile."""
    with conflict_on_failed_condition(f"prospect {found.id} changed since it was read"):
        found.update(
            actions=[Prospect.stage.set(stage), Prospect.updated_at.set(now)],
            condition=Prospect.id.exists(),
        )
