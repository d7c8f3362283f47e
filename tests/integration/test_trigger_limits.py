"""What a trigger may carry (crmjobs.limits): tags, idempotency key, delay and payload size,
through the client and the HTTP API. Breaking a limit is InvalidInput (a 400 naming it),
never a raw DynamoDB error or a 500, and nothing is recorded."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from http_api_events import HANDLER_FILE, http_event, lambda_context

from crmjobs import client, limits
from crmjobs.errors import InvalidInput, NotFound
from crmjobs.models import Prospect
from crmjobs_local.context import load_handler


@pytest.fixture(scope="module")
def handler():
    return load_handler(HANDLER_FILE)


def post(handler, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    """An IAM-authorized HTTP API (payload 2.0) POST through the trigger function."""
    response = handler(http_event("POST", path, body=body), lambda_context())
    return response["statusCode"], json.loads(response["body"])


def _payload(workspace_id: str) -> dict[str, str]:
    return {"workspaceId": workspace_id, "prospectId": "p-1"}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"tags": ["t" * 450_000]}, "tag"),
        ({"tags": ["t" * 50_000] * 10}, "tag"),
        ({"tags": [f"t{n}" for n in range(limits.MAX_TAGS + 1)]}, "tags"),
        ({"tags": [""]}, "tag"),
        ({"tags": "import"}, "tags"),
        ({"idempotency_key": "k" * 3000}, "idempotency key"),
        ({"idempotency_key": ""}, "idempotency key"),
        ({"delay": 0.4}, "whole seconds"),
        ({"delay": timedelta(milliseconds=1500)}, "whole seconds"),
        ({"delay": "10"}, "delay"),
        ({"delay": True}, "delay"),
        ({"delay": limits.MAX_DELAY_SECONDS + 1}, "delay"),
    ],
)
def test_the_client_rejects_what_breaks_a_limit(stack, workspace, options, named):
    with pytest.raises(InvalidInput, match=named):
        client.trigger("score-lead", _payload(workspace.id), **options)
    assert client.list_runs(workspace.id) == []


def test_a_payload_too_large_for_its_run_record_is_rejected(stack, workspace):
    inputs = {"notes": "x" * limits.MAX_PAYLOAD_BYTES}
    payload = {"workspaceId": workspace.id, "agentId": "a-1", "inputs": inputs}
    with pytest.raises(InvalidInput, match=f"{limits.MAX_PAYLOAD_BYTES:,} bytes"):
        client.trigger("execute-agent", payload)
    assert client.list_runs(workspace.id) == []


def test_limits_that_hold_are_accepted(stack, workspace):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    run = client.trigger(
        "score-lead",
        _payload(workspace.id),
        tags=["a" * limits.MAX_TAG_LENGTH] * 2 + [f"t{n}" for n in range(limits.MAX_TAGS - 1)],
        idempotency_key="k" * limits.MAX_IDEMPOTENCY_KEY_LENGTH,
        delay=2.0,
    )
    assert run.status == "DELAYED" and len(run.tags) == limits.MAX_TAGS
    assert run.idempotencyKey == "k" * limits.MAX_IDEMPOTENCY_KEY_LENGTH


def test_ids_that_cannot_name_a_run_or_workspace_are_not_found_or_invalid(stack):
    with pytest.raises(NotFound):
        client.retrieve("r" * 3000)
    with pytest.raises(NotFound):
        client.cancel("")
    with pytest.raises(InvalidInput, match="workspace"):
        client.list_runs("w" * 3000)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tags": ["t" * 450_000]}, "tag"),
        ({"tags": ["t" * 50_000] * 10}, "tag"),
        ({"tags": [""]}, "tag"),
        ({"idempotencyKey": "k" * 3000}, "idempotencyKey"),
        ({"delaySeconds": 0.5}, "delaySeconds"),
        ({"delaySeconds": "10"}, "delaySeconds"),
    ],
)
def test_the_http_api_answers_400_naming_the_limit(stack, workspace, handler, fields, named):
    status, body = post(
        handler, "/tasks/score-lead/runs", {"payload": _payload(workspace.id), **fields}
    )
    assert status == 400, body
    assert named in body["message"]
    assert client.list_runs(workspace.id) == []


def test_scheduled_times_are_iso_8601_text_with_a_zone(stack):
    with pytest.raises(InvalidInput, match="scheduledTime"):
        client.trigger("scheduled-lead-scoring", {"scheduledTime": 1795917600})
    with pytest.raises(InvalidInput, match="scheduledTime"):
        client.trigger("scheduled-lead-scoring", {"scheduledTime": "2026-11-30T02:00:00"})


def test_canceling_gives_the_idempotency_key_back(stack, workspace):
    first = client.trigger("score-lead", _payload(workspace.id), idempotency_key="sync-5")
    client.cancel(first.id)
    again = client.trigger("score-lead", _payload(workspace.id), idempotency_key="sync-5")
    assert again.id != first.id and not again.deduplicated
    assert client.retrieve(first.id).status == "CANCELED"
