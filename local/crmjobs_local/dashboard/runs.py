"""Runs a page at a time, for the dashboard: newest first, one workspace partition.

The ledger's `list_runs` returns the first N runs; the dashboard also pages (a cursor is
DynamoDB's LastEvaluatedKey, base64url JSON) and filters by creation time (a key
condition on the indexes' `createdAt` sort key). Every read is a Query of the workspace's
partition of a runs index, never a scan: one request per page unless a filter (a tag, or
a status next to a task) leaves a read short of a page and the query reads on.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from crmjobs import ledger
from crmjobs.errors import InvalidInput
from crmjobs.ledger import RunStatus, RunView
from crmjobs.models import Run
from crmjobs.models.runs import RunsByWorkspace, RunsByWorkspaceStatus, RunsByWorkspaceTask
from crmjobs.tasks import get_task

MAX_PAGE_SIZE = 200
#: Items read per request when a filter may drop some: DynamoDB applies Limit before the
#: filter, so reading a page's worth at a time would take a request per few matches.
FILTERED_READ_SIZE = 200


@dataclass(frozen=True)
class RunFilter:
    workspace_id: str
    task: str | None = None
    status: str | None = None
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def validated(self) -> RunFilter:
        if self.task:
            get_task(self.task)
        if self.status and self.status not in RunStatus.__members__:
            raise InvalidInput(f"unknown status {self.status!r}; one of {', '.join(RunStatus)}")
        for moment in (self.created_from, self.created_to):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput("times must carry a time zone")
        return self


@dataclass(frozen=True)
class RunPage:
    runs: list[RunView]
    next_cursor: str | None


def _encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str, hash_attribute: str, hash_key: str) -> dict:
    """The cursor's key, which must lie in the partition queried: a cursor never leads
    into another workspace, nor into another filter's index."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        partition = key[hash_attribute]["S"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidInput("cursor is not one this dashboard gave") from None
    if partition != hash_key:
        raise InvalidInput("cursor belongs to another listing")
    return key


def _created_condition(attribute, created_from: datetime | None, created_to: datetime | None):
    low = ledger.iso(created_from) if created_from else None
    # createdAt has milliseconds: the whole last millisecond is in.
    high = ledger.iso(created_to) if created_to else None
    if low and high:
        return attribute.between(low, high)
    if low:
        return attribute >= low
    if high:
        return attribute <= high
    return None


def list_runs_page(filters: RunFilter, *, cursor: str | None = None, limit: int = 25) -> RunPage:
    """One page of the workspace's runs matching the filters, and the cursor of the next."""
    filters = filters.validated()
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be 1-{MAX_PAGE_SIZE}")
    workspace = filters.workspace_id
    conditions = []
    if filters.task:
        index, partition, hash_key = (
            Run.by_workspace_task,
            RunsByWorkspaceTask.workspace_task,
            f"{workspace}#{filters.task}",
        )
        if filters.status:
            conditions.append(Run.status == str(RunStatus(filters.status)))
    elif filters.status:
        index, partition, hash_key = (
            Run.by_workspace_status,
            RunsByWorkspaceStatus.workspace_status,
            f"{workspace}#{RunStatus(filters.status)}",
        )
    else:
        index, partition, hash_key = Run.by_workspace, RunsByWorkspace.workspace_id, workspace
    if filters.tag:
        conditions.append(Run.tags.contains(filters.tag))
    filter_condition = None
    for condition in conditions:
        filter_condition = condition if filter_condition is None else filter_condition & condition
    result = index.query(
        hash_key,
        range_key_condition=_created_condition(
            RunsByWorkspace.created_at, filters.created_from, filters.created_to
        ),
        filter_condition=filter_condition,
        scan_index_forward=False,
        limit=limit,
        # One more than a page: when the page ends inside what was read, the cursor is its
        # last run's key, and a last page has no cursor.
        page_size=limit + 1 if filter_condition is None else max(limit + 1, FILTERED_READ_SIZE),
        last_evaluated_key=(
            _decode_cursor(cursor, partition.attr_name, hash_key) if cursor else None
        ),
    )
    runs = [RunView.of(run) for run in result]
    return RunPage(runs=runs, next_cursor=_encode_cursor(result.last_evaluated_key))
