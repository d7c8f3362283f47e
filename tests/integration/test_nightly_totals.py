"""The nightly job's run sums what its bulk runs did: as each one finishes, its counts
(processed, changed, ...) are added to the output of the nightly page that started it."""

from __future__ import annotations

import uuid

from crmjobs import client
from crmjobs.models import Prospect, Workspace
from crmjobs.tasks import SYSTEM_WORKSPACE


def _workspace(prospects: int) -> str:
    workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
    Workspace(id=workspace_id, name=workspace_id, subscription_tier="starter").save()
    for n in range(prospects):
        Prospect(workspace_id=workspace_id, id=f"p-{n}", name=f"P{n}").save()
    return workspace_id


def test_the_nightly_run_reports_the_totals_of_its_bulk_runs(stack):
    scored, also_scored, canceled = _workspace(3), _workspace(2), _workspace(1)
    schedule = stack.resources.schedules["ScheduledLeadScoringSchedule"]
    stack.scheduler.fire_now(schedule.name, schedule.group_name)
    stack.source_for_task("scheduled-lead-scoring").poll_once()
    [nightly] = client.list_runs(SYSTEM_WORKSPACE, task="scheduled-lead-scoring")
    assert nightly.status == "COMPLETED" and nightly.output["started"] == 3

    [skipped] = client.list_runs(canceled, task="bulk-score-leads")
    client.cancel(skipped.id)
    bulk = stack.source_for_task("bulk-score-leads")
    while bulk.poll_once() is not None:  # one bulk run a batch
        pass
    for workspace_id in (scored, also_scored):
        [run] = client.list_runs(workspace_id, task="bulk-score-leads")
        assert client.wait(run.id, timeout=120).status == "COMPLETED"

    output = client.retrieve(nightly.id).output
    assert output["workspaces"] == 3 and output["date"] == nightly.output["date"]
    assert (output["processed"], output["changed"], output["failed"]) == (5, 5, 0)
    assert (output["runsFinished"], output["runsCanceled"]) == (3, 1)
    assert "runsFailed" not in output
