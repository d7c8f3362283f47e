"""The nightly job pages through the active workspaces, one message per page; this
module's stack holds only the workspaces its test creates."""

from __future__ import annotations

from crmjobs import client
from crmjobs.models import Workspace
from crmjobs.services import nightly_scoring
from crmjobs.tasks import SYSTEM_WORKSPACE


def _drain(source) -> None:
    """Handle the job's messages until its queue is empty (each page sends the next)."""
    for _ in range(20):
        if source.poll_once() is None:
            return
    raise AssertionError("the nightly job kept sending pages")


def test_pages_of_two_over_five_workspaces_fired_twice_start_five_runs(stack, monkeypatch):
    monkeypatch.setattr(nightly_scoring, "WORKSPACES_PER_PAGE", 2)
    active = [f"ws-night-{n}" for n in range(5)]
    for workspace_id in active:
        Workspace(id=workspace_id, name=workspace_id).save()
    Workspace(id="ws-night-closed", name="Closed", is_active=False).save()
    schedule = stack.resources.schedules["ScheduledLeadScoringSchedule"]
    source = stack.source_for_task("scheduled-lead-scoring")
    for _ in range(2):
        stack.scheduler.fire_now(schedule.name, schedule.group_name)
        _drain(source)

    pages = client.list_runs(SYSTEM_WORKSPACE, task="scheduled-lead-scoring")
    assert {run.status for run in pages} == {"COMPLETED"}
    # First firing: pages [0, 1], [2, 3], [4]; the second firing's first page finds its
    # runs and its next page already there.
    assert len(pages) == 4
    outputs = sorted((run.output for run in pages), key=lambda o: (o["started"], o["workspaces"]))
    day = outputs[0]["date"]
    assert {o["date"] for o in outputs} == {day}
    assert [(o["workspaces"], o["started"], o["alreadyStarted"]) for o in outputs] == [
        (2, 0, 2),
        (1, 1, 0),
        (2, 2, 0),
        (2, 2, 0),
    ]
    first_pages = [run for run in pages if run.source == "sqs"]
    next_pages = [run for run in pages if run.source == "schedule"]
    assert len(first_pages) == 2 and len(next_pages) == 2
    assert {run.payload["afterWorkspaceId"] for run in next_pages} == {active[1], active[3]}
    repeated = next(run for run in first_pages if run.output["started"] == 0)
    original = next(run for run in first_pages if run.output["started"] == 2)
    assert repeated.output["nextPage"] == original.output["nextPage"]

    for workspace_id in active:
        [bulk] = client.list_runs(workspace_id, task="bulk-score-leads")
        assert f"day:{day}" in bulk.tags
    assert client.list_runs("ws-night-closed") == []
