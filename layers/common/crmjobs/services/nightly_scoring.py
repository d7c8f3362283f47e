"""The nightly job: one bulk lead-scoring run per active workspace, a page of workspaces
per message, so an attempt's work is bounded however many workspaces there are."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crmjobs import client, config, ledger
from crmjobs.client import TriggerRequest
from crmjobs.models import Workspace
from crmjobs.models.base import flag_unreadable
from crmjobs.models.entities import ACTIVE_SHARD, ActiveWorkspacesIndex
from crmjobs.runtime import RunContext
from crmjobs.schemas import ScheduledLeadScoringPayload

TASK = "scheduled-lead-scoring"
#: Active workspaces per message (page): 100 runs to record, about 110 AWS requests (a
#: TransactWriteItems each, a SendMessageBatch per 10), a few seconds of the function's
#: 300 s in AWS and some 40 s on the local runtime.
WORKSPACES_PER_PAGE = 100


def _active_workspaces(after: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to `limit` active workspace ids after `after` (in id order), and whether there
    are more. A Query of the sparse active-index, never a Scan."""
    condition = None if after is None else ActiveWorkspacesIndex.id > after
    query = Workspace.active_index.query(
        ACTIVE_SHARD, condition, limit=limit + 1, page_size=limit + 1
    )
    with flag_unreadable():  # only ids are used: a malformed workspace fails its own run
        ids = [workspace.id for workspace in query]
    return ids[:limit], len(ids) > limit


def scheduled_lead_scoring(
    payload: ScheduledLeadScoringPayload, context: RunContext
) -> dict[str, Any]:
    """One bulk run per active workspace of this page, keyed workspace + local date, and
    the next page's message, keyed date + the page's last workspace: a second firing on
    the same day starts nothing new, and a retried page sends its next page once."""
    fired = payload.scheduledTime or datetime.now(UTC)
    day = fired.astimezone(ZoneInfo(config.env("SCORING_TIMEZONE", "UTC"))).date().isoformat()
    tags = ("scheduled", f"day:{day}")
    workspace_ids, more = _active_workspaces(payload.afterWorkspaceId, WORKSPACES_PER_PAGE)
    next_page = None
    if more:
        # Sent before this page's runs, so a page that keeps failing stops no other page.
        next_page = client.trigger(
            TASK,
            {"scheduledTime": fired.isoformat(), "afterWorkspaceId": workspace_ids[-1]},
            idempotency_key=f"{TASK}:{day}:after:{workspace_ids[-1]}",
            tags=tags,
            source="schedule",
        )
    ledger.expect_child_reports(context.run_id)  # its output sums what its runs did
    runs = client.batch_trigger(
        [
            TriggerRequest(
                "bulk-score-leads",
                {"workspaceId": workspace_id},
                idempotency_key=f"{TASK}:{day}",
                tags=tags,
            )
            for workspace_id in workspace_ids
        ],
        source="schedule",
        parent_run_id=context.run_id,
    )
    repeated = sum(run.deduplicated for run in runs)
    return {
        "date": day,
        "workspaces": len(runs),
        "started": len(runs) - repeated,
        "alreadyStarted": repeated,
        "nextPage": None if next_page is None else next_page.id,
    }
