"""Agents and campaigns written by other apps (the CRM's own app writes these tables too):
timestamps in the common ISO-8601 forms and numbers stored as strings are read; a value
that still cannot be read, or a required one missing, fails the run at once naming the
record and the field (never retried)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from crmjobs import client, config
from crmjobs.adapters.aws import client as aws_client
from crmjobs.models import Agent, Campaign, Prospect, Workspace

ROOT = Path(__file__).resolve().parents[2]
JAVASCRIPT = "2026-11-30T10:00:00.000Z"  # Date.prototype.toISOString()
NAIVE = "2026-11-30T10:00:00"
_serializer = TypeSerializer()


@pytest.fixture(scope="module")
def script_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scripts") / "script.json"
    answer = {"content": [{"text": "Done."}], "stopReason": "end_turn",
              "usage": {"inputTokens": 10, "outputTokens": 2}}
    path.write_text(json.dumps({"turns": [answer]}))
    return path


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory, script_file):
    """The stack serving its queues, with the scripted chat model."""
    from crmjobs_local.stack import LocalRuntime

    parameters = {"AgentModelBackend": "scripted", "AgentScriptFile": str(script_file)}
    with LocalRuntime(
        ROOT / "template.yaml",
        data_dir=tmp_path_factory.mktemp("data"),
        in_process=True,
        parameters=parameters,
    ) as local:
        with local.serving():
            yield local


@pytest.fixture
def workspace_id(local_stack) -> str:
    workspace = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Acme", subscription_tier="starter")
    workspace.save()
    return workspace.id


def _put(table_variable: str, item: dict[str, Any]) -> None:
    """Write an item as another app would, bypassing the models (None: no attribute)."""
    aws_client("dynamodb").put_item(
        TableName=config.require(table_variable),
        Item={name: _serializer.serialize(value) for name, value in item.items()
              if value is not None},
    )


def _agent(workspace_id: str, agent_id: str, **fields: Any) -> None:
    _put("AGENTS_TABLE", {"workspaceId": workspace_id, "id": agent_id, "name": "Ava",
                          "status": "active", "type": "sales", **fields})


def _campaign(workspace_id: str, campaign_id: str, **fields: Any) -> None:
    _put("CAMPAIGNS_TABLE", {"workspaceId": workspace_id, "id": campaign_id, "name": "News",
                             "status": "draft", "audience": "all_leads",
                             "content": {"subject": "Hi {{firstName}}", "body": "News"},
                             **fields})


def _run(task: str, payload: dict[str, Any]):
    return client.wait(client.trigger(task, payload).id, timeout=120)


def test_execute_agent_reads_an_agent_as_other_apps_write_it(workspace_id):
    _agent(workspace_id, "a-1", lastExecutedAt=JAVASCRIPT, updatedAt=NAIVE, executionCount=2,
           config=json.dumps({"capabilities": ["crm"]}))
    done = _run("execute-agent", {"workspaceId": workspace_id, "agentId": "a-1"})
    assert (done.status, done.attempts) == ("COMPLETED", 1), done.error
    agent = Agent.get(workspace_id, "a-1")
    assert agent.execution_count == 3
    assert agent.last_executed_at.isoformat() > "2026-11-30T10:00:00+00:00"


def test_an_execution_count_stored_as_text_is_counted_on_as_a_number(workspace_id):
    """DynamoDB's ADD refuses a string: the first execution sets the number, the next adds."""
    _agent(workspace_id, "a-2", executionCount="5", config=json.dumps({"capabilities": ["crm"]}))
    for expected in (6, 7):
        done = _run("execute-agent", {"workspaceId": workspace_id, "agentId": "a-2"})
        assert (done.status, done.attempts) == ("COMPLETED", 1), done.error
        stored = aws_client("dynamodb").get_item(
            TableName=config.require("AGENTS_TABLE"),
            Key={"workspaceId": {"S": workspace_id}, "id": {"S": "a-2"}},
            ConsistentRead=True,
        )["Item"]
        assert stored["executionCount"] == {"N": str(expected)}


def test_the_active_agents_are_listed_as_other_apps_write_them(workspace_id):
    _agent(workspace_id, "a-1", lastExecutedAt="2026-11-30T11:00:00+01:00", updatedAt=NAIVE,
           executionCount="5")  # a number stored as a string
    done = _run("process-active-agents", {"workspaceId": workspace_id})
    assert done.status == "COMPLETED", done.error
    [listed] = done.output["agents"]
    assert listed["executionCount"] == 5
    assert listed["lastExecutedAt"] == "2026-11-30T11:00:00+01:00"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"lastExecutedAt": "last tuesday"}, "lastExecutedAt"),
        ({"executionCount": "a lot"}, "executionCount"),
        ({"name": None}, "name"),
    ],
    ids=["unreadable timestamp", "unreadable number", "missing required field"],
)
def test_an_agent_that_cannot_be_read_fails_the_run_at_once_naming_the_field(
    workspace_id, fields, named
):
    _agent(workspace_id, "a-9", **fields)
    failed = _run("execute-agent", {"workspaceId": workspace_id, "agentId": "a-9"})
    assert (failed.status, failed.attempts) == ("FAILED", 1)
    assert failed.error["type"] == "MalformedRecord"
    assert "a-9" in failed.error["message"] and named in failed.error["message"]


def test_send_campaign_reads_a_campaign_as_other_apps_write_it(workspace_id):
    Prospect(workspace_id=workspace_id, id="p-1", name="Ada Lovelace",
             email=f"ada@{workspace_id}.example.com").save()
    _campaign(workspace_id, "c-1", createdAt=JAVASCRIPT, updatedAt=NAIVE,
              scheduledFor="2026-11-30T10:00:00Z")
    done = _run("send-campaign", {"workspaceId": workspace_id, "campaignId": "c-1"})
    assert done.status == "COMPLETED", done.error
    assert (done.output["status"], done.output["sent"]) == ("completed", 1)
    stored = Campaign.get(workspace_id, "c-1")
    assert stored.created_at.isoformat() == "2026-11-30T10:00:00+00:00"  # never rewritten


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"scheduledFor": "next week"}, "scheduledFor"),
        ({"name": None}, "name"),
    ],
    ids=["unreadable timestamp", "missing required field"],
)
def test_a_campaign_that_cannot_be_read_fails_the_run_at_once_naming_the_field(
    workspace_id, fields, named
):
    Prospect(workspace_id=workspace_id, id="p-1", name="Ada Lovelace",
             email=f"ada@{workspace_id}.example.com").save()
    _campaign(workspace_id, "c-9", **fields)
    failed = _run("send-campaign", {"workspaceId": workspace_id, "campaignId": "c-9"})
    assert (failed.status, failed.attempts) == ("FAILED", 1)
    assert failed.error["type"] == "MalformedRecord"
    assert "c-9" in failed.error["message"] and named in failed.error["message"]
    raw = aws_client("dynamodb").get_item(
        TableName=config.require("CAMPAIGNS_TABLE"),
        Key={"workspaceId": {"S": workspace_id}, "id": {"S": "c-9"}},
    )["Item"]
    assert raw["status"] == {"S": "draft"} and "sendingRun" not in raw  # nothing written


def test_an_unreadable_agent_is_reported_and_the_others_are_still_processed(workspace_id):
    schedule = {"schedule": {"expression": "rate(1 minute)"}, "capabilities": ["crm"]}
    _agent(workspace_id, "a-1", config=json.dumps(schedule))
    _agent(workspace_id, "a-9", config=json.dumps(schedule), lastExecutedAt="last tuesday")
    done = _run("process-active-agents", {"workspaceId": workspace_id})
    assert done.status == "COMPLETED", done.error
    assert done.output["count"] == 2
    [error] = done.output["scheduleErrors"]
    assert error["agentId"] == "a-9" and "lastExecutedAt" in error["error"]
    assert [run["agentId"] for run in done.output["scheduledRuns"]] == ["a-1"]


def test_the_health_check_counts_an_unreadable_agent(workspace_id):
    _agent(workspace_id, "a-9", lastExecutedAt="last tuesday", executionCount="a lot")
    done = _run("scheduled-agent-health-check", {})
    assert done.status == "COMPLETED", done.error
    assert done.output["agentsByStatus"]["active"] >= 1
