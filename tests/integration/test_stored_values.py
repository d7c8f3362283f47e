"""Records written by other apps: timestamps in the common ISO-8601 forms (JavaScript's
toISOString, no zone, no fraction, offsets) and numbers stored as strings are read; a
value that still cannot be read, or a required one missing, fails that one record at once
(the record and the field named, never retried), and a bulk run counts it failed and
carries on with the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmjobs import client, config
from crmjobs.adapters.aws import client as aws_client
from crmjobs.models import KnowledgeItem, Prospect


def _put(table_variable: str, item: dict[str, Any]) -> None:
    """Write an item as another app would, bypassing the models."""
    aws_client("dynamodb").put_item(
        TableName=config.require(table_variable),
        Item={
            name: {"N": str(value)} if isinstance(value, int) else {"S": value}
            for name, value in item.items()
        },
    )


def _prospect(workspace_id: str, prospect_id: str, **fields: Any) -> None:
    _put(
        "PROSPECTS_TABLE",
        {"workspaceId": workspace_id, "id": prospect_id, "name": "Ada", **fields},
    )


def _javascript(moment: datetime) -> str:
    """Date.prototype.toISOString(): milliseconds and Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _score_lead(stack, workspace_id: str, prospect_id: str):
    run = client.trigger("score-lead", {"workspaceId": workspace_id, "prospectId": prospect_id})
    stack.source_for_task("score-lead").poll_once()
    return client.retrieve(run.id)


@pytest.mark.parametrize(
    "form",
    [
        _javascript,
        lambda moment: moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        lambda moment: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda moment: moment.astimezone(UTC).isoformat(timespec="microseconds"),
        lambda moment: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
    ],
    ids=["toISOString", "naive", "no fraction", "offset", "basic offset"],
)
def test_score_lead_reads_the_common_iso_8601_forms(stack, workspace, form):
    contacted = datetime.now(UTC) - timedelta(days=3)
    _prospect(
        workspace.id,
        "p-1",
        lastContactedAt=form(contacted),
        updatedAt=form(contacted),
        estimatedValue="500000",  # a number stored as a string
        stage="qualified",
    )
    done = _score_lead(stack, workspace.id, "p-1")
    assert (done.status, done.attempts) == ("COMPLETED", 1), done.error
    breakdown = done.output["breakdown"]
    assert breakdown["recency"] == 10 and breakdown["estimated_value"] == 15
    assert done.output["changed"] is True
    assert Prospect.get(workspace.id, "p-1").score == done.output["score"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"lastContactedAt": "last tuesday"}, "lastContactedAt"),
        ({"estimatedValue": "a lot"}, "estimatedValue"),
        ({"name": None}, "name"),
    ],
    ids=["unreadable timestamp", "unreadable number", "missing required field"],
)
def test_a_prospect_that_cannot_be_read_fails_at_once_naming_the_field(
    stack, workspace, fields, named
):
    item = {"updatedAt": _javascript(datetime.now(UTC)), **fields}
    _prospect(workspace.id, "p-9", **{k: v for k, v in item.items() if v is not None})
    if fields.get("name", "") is None:
        aws_client("dynamodb").update_item(
            TableName=config.require("PROSPECTS_TABLE"),
            Key={"workspaceId": {"S": workspace.id}, "id": {"S": "p-9"}},
            UpdateExpression="REMOVE #n",
            ExpressionAttributeNames={"#n": "name"},
        )
    failed = _score_lead(stack, workspace.id, "p-9")
    assert (failed.status, failed.attempts) == ("FAILED", 1)
    assert failed.error["type"] == "MalformedRecord"
    assert "p-9" in failed.error["message"] and named in failed.error["message"]


def test_a_bulk_run_counts_unreadable_prospects_failed_and_carries_on(stack, workspace):
    now = datetime.now(UTC)
    for n in range(4):
        _prospect(workspace.id, f"p-{n}", updatedAt=_javascript(now), email=f"a{n}@acme.com")
    _prospect(workspace.id, "p-naive", updatedAt="2026-11-30T10:00:00")
    _prospect(workspace.id, "p-ms", updatedAt="2026-11-30T10:00:00.000Z", scoredAt="1999-01-01")
    _prospect(workspace.id, "p-bad-updated", updatedAt="30/11/2026 10:00")
    _prospect(workspace.id, "p-bad-contacted", lastContactedAt="yesterday")
    _prospect(workspace.id, "p-bad-score", scoredAt="2026-11-30T10:00:00Z", score="high")
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-score-leads").poll_once()
    done = client.wait(run.id, timeout=120)
    assert (done.status, done.attempts) == ("COMPLETED", 1), done.error
    assert done.output == {
        "processed": 9,
        "changed": 6,
        "unchanged": 0,
        "failed": 3,
        "pages": 1,
        "listed": 9,
    }
    for good in ("p-0", "p-3", "p-naive", "p-ms"):
        assert Prospect.get(workspace.id, good).score is not None


def test_a_bulk_indexing_run_marks_an_unreadable_item_failed_naming_the_field(stack, workspace):
    text = "Pricing starts at ten dollars a month. Every plan includes support."
    KnowledgeItem(workspace_id=workspace.id, id="k-1", title="Pricing", content=text).save()
    _put(
        "KNOWLEDGE_TABLE",
        {
            "workspaceId": workspace.id,
            "id": "k-2",
            "title": "Support",
            "content": text,
            "status": "processing",
            "chunkCount": "many",
            "updatedAt": "2026-11-30T10:00:00.000Z",
        },
    )
    run = client.trigger("bulk-index-documents", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-index-documents").poll_once()
    done = client.wait(run.id, timeout=120)
    assert done.status == "COMPLETED", done.error
    assert (done.output["indexed"], done.output["failed"]) == (1, 1)
    assert KnowledgeItem.get(workspace.id, "k-1").status == "ready"
    raw = aws_client("dynamodb").get_item(
        TableName=config.require("KNOWLEDGE_TABLE"),
        Key={"workspaceId": {"S": workspace.id}, "id": {"S": "k-2"}},
    )["Item"]
    assert raw["status"] == {"S": "failed"}
    assert "chunkCount" in raw["processingError"]["S"] and "k-2" in raw["processingError"]["S"]
