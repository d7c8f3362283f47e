"""The nightly job: one bulk lead-scoring run per active workspace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crmjobs import config
from crmjobs.client import TriggerRequest, batch_trigger
from crmjobs.models import Workspace
from crmjobs.runtime import RunContext
from crmjobs.schemas import ScheduledLeadScoringPayload


def scheduled_lead_scoring(
    payload: ScheduledLeadScoringPayload, context: RunContext
) -> dict[str, Any]:
    """One bulk run per active workspace, keyed workspace + local date: a second firing
    on the same day starts nothing new."""
    fired = payload.scheduledTime or datetime.now(UTC)
    day = fired.astimezone(ZoneInfo(config.env("SCORING_TIMEZONE", "UTC"))).date().isoformat()
    requests = [
        TriggerRequest(
            "bulk-score-leads",
            {"workspaceId": workspace.id},
            idempotency_key=f"scheduled-lead-scoring:{day}",
            tags=("scheduled", f"day:{day}"),
        )
        for workspace in Workspace.active()
    ]
    runs = batch_trigger(requests, source="schedule")
    repeated = sum(run.deduplicated for run in runs)
    return {
        "date": day,
        "workspaces": len(runs),
        "started": len(runs) - repeated,
        "alreadyStarted": repeated,
    }
