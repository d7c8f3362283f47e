"""Lead scoring on the real path: the concurrent-edit conflict, bulk scoring through the
state machine under moto, and the nightly job fired twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from crmjobs import client
from crmjobs.models import Prospect, Workspace
from crmjobs.services import scoring

STAGES = ["new", "contacted", "qualified", "proposal", "negotiation", "won", "lost"]


def _seed(workspace_id: str, count: int) -> None:
    with Prospect.batch_write() as batch:
        for n in range(count):
            batch.save(
                Prospect(
                    workspace_id=workspace_id,
                    id=f"p-{n:05d}",
                    name=f"Prospect {n}",
                    email=f"lead{n}@{'gmail.com' if n % 3 else 'acme.com'}",
                    title="VP Sales" if n % 4 == 0 else "Engineer",
                    stage=STAGES[n % len(STAGES)],
                    estimated_value=(n % 5) * 300_000,
                )
            )


def test_concurrent_edit_is_rescored_not_clobbered(stack, workspace, monkeypatch):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada", stage="new").save()
    read = Prospect.get(workspace.id, "p-1")
    # The app edits the prospect after the scorer read it.
    edited = Prospect.get(workspace.id, "p-1")
    edited.stage = "won"
    edited.title = "Chief Executive Officer"
    edited.save()
    outcome = scoring.score_and_store(read, datetime.now(UTC))
    stored = Prospect.get(workspace.id, "p-1")
    assert stored.stage == "won" and stored.title == "Chief Executive Officer"
    assert outcome.score == stored.score == 10 + 10 + 15 + 50
    assert stored.score_breakdown.as_dict() == outcome.breakdown


def test_unchanged_score_is_not_rewritten(stack, workspace):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    now = datetime.now(UTC)
    first = scoring.score_and_store(Prospect.get(workspace.id, "p-1"), now)
    version = Prospect.get(workspace.id, "p-1").version
    second = scoring.score_and_store(Prospect.get(workspace.id, "p-1"), now + timedelta(hours=25))
    assert first.changed and not second.changed
    assert Prospect.get(workspace.id, "p-1").version == version


def test_bulk_scoring_through_the_state_machine(stack, workspace):
    _seed(workspace.id, 1200)
    other = Workspace(id=f"{workspace.id}-other", name="Other")
    other.save()
    _seed(other.id, 3)
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-score-leads").poll_once()
    done = client.wait(run.id, timeout=300)
    assert done.status == "COMPLETED", done.error
    assert done.output == {
        "processed": 1200,
        "changed": 1200,
        "unchanged": 0,
        "failed": 0,
        "pages": 2,
        "listed": 1200,
    }
    scores = [p.score for p in Prospect.query(workspace.id)]
    assert len(scores) == 1200 and all(0 <= s <= 100 for s in scores)
    assert all(p.score is None for p in Prospect.query(other.id))

    again = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-score-leads").poll_once()
    assert client.wait(again.id, timeout=120).output == {"pages": 2, "listed": 1200}


def test_nightly_job_fired_twice_starts_one_bulk_run_per_workspace(stack, workspace):
    inactive = Workspace(id=f"{workspace.id}-closed", name="Closed", is_active=False)
    inactive.save()
    schedule = stack.resources.schedules["ScheduledLeadScoringSchedule"]
    assert (schedule.expression, schedule.timezone) == ("cron(0 2 * * ? *)", "UTC")
    for _ in range(2):
        stack.scheduler.fire_now(schedule.name, schedule.group_name)
        stack.source_for_task("scheduled-lead-scoring").poll_once()
    nightly = client.list_runs("_system", task="scheduled-lead-scoring", limit=2)
    assert [run.status for run in nightly] == ["COMPLETED", "COMPLETED"]
    assert all(run.source == "sqs" for run in nightly)
    first, second = nightly[1].output, nightly[0].output
    assert first["date"] == second["date"]
    assert first["started"] == first["workspaces"] >= 1
    assert second["started"] == 0 and second["alreadyStarted"] == first["workspaces"]
    bulk = client.list_runs(workspace.id, task="bulk-score-leads")
    assert len(bulk) == 1 and f"day:{first['date']}" in bulk[0].tags
    assert client.list_runs(inactive.id) == []


def test_failing_bulk_run_is_retried_then_dead_lettered(stack, workspace, monkeypatch):
    from crmjobs.adapters.aws import client as aws_client
    from crmjobs.config import dead_letter_queue_url

    _seed(workspace.id, 5)

    def unavailable(*args, **kwargs):
        raise ConnectionError("DynamoDB unavailable")

    monkeypatch.setattr(Prospect, "batch_get", unavailable)
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    source = stack.source_for_task("bulk-score-leads")
    source.poll_once()
    deadline = time.monotonic() + 120
    while client.retrieve(run.id).status != "FAILED" and time.monotonic() < deadline:
        source.poll_once()  # the retry's message, once the first execution failed
    failed = client.retrieve(run.id)
    assert (failed.status, failed.attempts) == ("FAILED", 2)
    assert "DynamoDB unavailable" in failed.error["message"]
    assert failed.execution == f"{run.id}-2"
    dead = aws_client("sqs").receive_message(
        QueueUrl=dead_letter_queue_url("bulk-score-leads"),
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )["Messages"]
    assert run.id in {m["MessageAttributes"]["runId"]["StringValue"] for m in dead}
