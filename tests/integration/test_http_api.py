"""The HTTP trigger API end to end: API Gateway HTTP API (payload 2.0) events through the
trigger_api function's handler, runs executed by the score-lead queue's poller, and the
JWT mode in which a token's workspace claim scopes every call."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from http_api_events import HANDLER_FILE, http_event, lambda_context

from crmjobs import client
from crmjobs.models import Prospect, Workspace
from crmjobs_local.context import load_handler


@pytest.fixture(scope="module")
def handler():
    return load_handler(HANDLER_FILE)


def call(handler, method: str, path: str, **options: Any) -> tuple[int, Any]:
    """(status, decoded JSON body); an unhandled error would raise out of the handler."""
    response = handler(http_event(method, path, **options), lambda_context())
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def _prospect(workspace_id: str, prospect_id: str = "p-1") -> None:
    Prospect(
        workspace_id=workspace_id, id=prospect_id, name="Ada", email="ada@acme.com", stage="new"
    ).save()


def _score_lead(workspace_id: str, prospect_id: str = "p-1", **fields: Any) -> dict[str, Any]:
    return {"payload": {"workspaceId": workspace_id, "prospectId": prospect_id}, **fields}


# --- IAM mode (trusted callers) ---------------------------------------------------------


def test_trigger_runs_to_completion_and_is_retrieved(stack, workspace, handler):
    _prospect(workspace.id)
    status, run = call(handler, "POST", "/tasks/score-lead/runs", body=_score_lead(workspace.id))
    assert status == 202
    assert (run["status"], run["source"], run["task"]) == ("QUEUED", "http", "score-lead")
    assert run["workspaceId"] == workspace.id and not run["deduplicated"]

    stack.source_for_task("score-lead").poll_once()

    status, done = call(handler, "GET", f"/runs/{run['id']}")
    assert status == 200
    assert done["status"] == "COMPLETED" and done["attempts"] == 1
    assert done["output"]["score"] == Prospect.get(workspace.id, "p-1").score


def test_idempotency_key_repeat_returns_the_first_run(stack, workspace, handler):
    body = _score_lead(workspace.id, idempotencyKey="import-7")
    first_status, first = call(handler, "POST", "/tasks/score-lead/runs", body=body)
    again_status, again = call(handler, "POST", "/tasks/score-lead/runs", body=body)
    assert (first_status, again_status) == (202, 200)
    assert again["id"] == first["id"] and again["deduplicated"] is True
    assert again["idempotencyKey"] == "import-7"


def test_base64_encoded_body_is_decoded(stack, workspace, handler):
    status, run = call(
        handler, "POST", "/tasks/score-lead/runs", body=_score_lead(workspace.id), base64_body=True
    )
    assert (status, run["payload"]["workspaceId"]) == (202, workspace.id)


def test_list_filters_by_task_status_and_tag_newest_first(stack, workspace, handler):
    trigger = "/tasks/score-lead/runs"
    _, tagged = call(handler, "POST", trigger, body=_score_lead(workspace.id, tags=["import"]))
    _, plain = call(handler, "POST", trigger, body=_score_lead(workspace.id, "p-2"))
    _, bulk = call(
        handler,
        "POST",
        "/tasks/bulk-score-leads/runs",
        body={"payload": {"workspaceId": workspace.id}},
    )
    call(handler, "POST", f"/runs/{plain['id']}/cancel")

    def listed(**filters: str) -> list[str]:
        status, body = call(handler, "GET", "/runs", query={"workspaceId": workspace.id, **filters})
        assert status == 200
        return [run["id"] for run in body["runs"]]

    assert listed() == [bulk["id"], plain["id"], tagged["id"]]
    assert listed(task="score-lead") == [plain["id"], tagged["id"]]
    assert listed(tag="import") == [tagged["id"]]
    assert listed(status="CANCELED") == [plain["id"]]
    assert listed(task="score-lead", status="QUEUED") == [tagged["id"]]
    assert listed(limit="1") == [bulk["id"]]


def test_cancel_a_delayed_run_then_cancel_again_is_refused(stack, workspace, handler):
    status, run = call(
        handler, "POST", "/tasks/score-lead/runs", body=_score_lead(workspace.id, delaySeconds=60)
    )
    assert (status, run["status"]) == (202, "DELAYED")
    status, canceled = call(handler, "POST", f"/runs/{run['id']}/cancel")
    assert (status, canceled["status"]) == (200, "CANCELED")
    status, error = call(handler, "POST", f"/runs/{run['id']}/cancel")
    assert status == 400
    assert "only QUEUED or DELAYED" in error["message"]


def test_replay_queues_a_new_run_of_the_same_payload(stack, workspace, handler):
    _prospect(workspace.id)
    _, run = call(handler, "POST", "/tasks/score-lead/runs", body=_score_lead(workspace.id))
    stack.source_for_task("score-lead").poll_once()
    status, replayed = call(handler, "POST", f"/runs/{run['id']}/replay")
    assert status == 202
    assert replayed["id"] != run["id"] and replayed["replayOf"] == run["id"]
    assert (replayed["status"], replayed["payload"]) == ("QUEUED", run["payload"])
    stack.source_for_task("score-lead").poll_once()
    assert call(handler, "GET", f"/runs/{replayed['id']}")[1]["status"] == "COMPLETED"


def test_tasks_and_their_payload_schemas_are_listed(stack, handler):
    status, body = call(handler, "GET", "/tasks")
    assert status == 200
    assert {"name": "score-lead", "family": "lead-scoring", "attempts": 3} in body["tasks"]
    status, schema = call(handler, "GET", "/tasks/score-lead/schema")
    assert status == 200
    assert set(schema["required"]) == {"workspaceId", "prospectId"}


@pytest.mark.parametrize(
    ("method", "path", "options", "expected"),
    [
        ("POST", "/tasks/score-lead/runs", {"raw_body": '{"payload": '}, "body is not JSON"),
        ("POST", "/tasks/score-lead/runs", {"body": None}, "body: Field required"),
        (
            "POST",
            "/tasks/score-lead/runs",
            {"body": {"payload": {}, "priority": 1}},
            "priority: Extra inputs are not permitted",
        ),
        (
            "POST",
            "/tasks/score-lead/runs",
            {"body": {"payload": {"workspaceId": "ws-1", "prospectId": "p 1"}}},
            "invalid score-lead payload: prospectId",
        ),
        (
            "POST",
            "/tasks/score-lead/runs",
            {"body": {"payload": {"workspaceId": "ws-1", "prospectId": "p-1"}, "delaySeconds": -5}},
            "delaySeconds: Input should be greater than or equal to 0",
        ),
        (
            "POST",
            "/tasks/score-lead/runs",
            {"body": _score_lead("ws-1", delaySeconds="10")},
            "delaySeconds: Value error, must be a number of seconds",
        ),
        (
            "POST",
            "/tasks/score-lead/runs",
            {"body": _score_lead("ws-1", delaySeconds=0.5)},
            "delaySeconds: Input should be a valid integer, got a number with a fractional",
        ),
        ("POST", "/tasks/score-lead/runs", {"body": ["payload"]}, "body: Input should be"),
        ("GET", "/runs", {"query": {"workspaceId": "ws-1", "status": "DONE"}}, "unknown status"),
        ("GET", "/runs", {"query": {"workspaceId": "ws-1", "limit": "ten"}}, "limit: Input should"),
        ("GET", "/runs", {"query": {"workspaceId": "ws-1", "limit": "0"}}, "limit: Input should"),
        ("GET", "/runs", {}, "workspaceId is required"),
    ],
    ids=[
        "invalid-json",
        "no-body",
        "unknown-field",
        "bad-payload",
        "negative-delay",
        "delay-as-text",
        "delay-fraction",
        "body-not-an-object",
        "bad-status",
        "limit-not-a-number",
        "limit-zero",
        "no-workspace",
    ],
)
def test_bad_request_is_400_with_a_clear_message(stack, handler, method, path, options, expected):
    status, error = call(handler, method, path, **options)
    assert status == 400
    assert error["error"] == "BadRequest"
    assert expected in error["message"]


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "application/x-www-form-urlencoded", "text/plain"]
)
def test_a_body_that_is_not_json_is_415(stack, workspace, handler, content_type):
    """Found by schemathesis: a multipart without a boundary made Powertools raise (a 500)."""
    event = http_event("POST", "/tasks/score-lead/runs", body=_score_lead(workspace.id))
    event["headers"]["content-type"] = content_type
    response = handler(event, lambda_context())
    assert response["statusCode"] == 415
    assert json.loads(response["body"]) == {
        "error": "UnsupportedMediaType",
        "message": f"the body must be application/json, not {content_type}",
    }
    assert client.list_runs(workspace.id) == []


def test_a_base64_body_that_is_not_utf8_is_400(stack, handler):
    """Found by schemathesis: Powertools failed decoding it (a 500)."""
    event = http_event("POST", "/tasks/score-lead/runs", raw_body="x")
    event.update(body=base64.b64encode(b"\x80\xff").decode(), isBase64Encoded=True)
    response = handler(event, lambda_context())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["message"] == "body is not JSON: not UTF-8 text"


def test_unknown_route_is_404_and_a_method_a_route_lacks_405(stack, handler):
    assert call(handler, "GET", "/nothing/here") == (
        404,
        {"error": "NotFound", "message": "no route GET /nothing/here"},
    )
    response = handler(http_event("DELETE", "/runs/run_any"), lambda_context())
    assert (response["statusCode"], response["headers"]["Allow"]) == (405, "GET")
    assert json.loads(response["body"])["error"] == "MethodNotAllowed"


@pytest.mark.parametrize(
    ("method", "path", "options", "expected"),
    [
        (
            "POST",
            "/tasks/no-such-task/runs",
            {"body": {"payload": {}}},
            "unknown task 'no-such-task'",
        ),
        ("GET", "/tasks/no-such-task/schema", {}, "unknown task 'no-such-task'"),
        ("GET", "/runs", {"query": {"workspaceId": "ws-1", "task": "nope"}}, "unknown task 'nope'"),
        ("GET", "/runs/run_missing", {}, "run run_missing not found"),
        ("POST", "/runs/run_missing/cancel", {}, "run run_missing not found"),
        ("POST", "/runs/run_missing/replay", {}, "run run_missing not found"),
    ],
    ids=[
        "trigger-unknown-task",
        "schema-unknown-task",
        "list-unknown-task",
        "retrieve-unknown-run",
        "cancel-unknown-run",
        "replay-unknown-run",
    ],
)
def test_unknown_task_or_run_is_404(stack, handler, method, path, options, expected):
    status, error = call(handler, method, path, **options)
    assert (status, error["error"]) == (404, "NotFound")
    assert expected in error["message"]


# --- JWT mode: the token's workspace claim scopes every call ------------------------------


@pytest.fixture
def jwt_mode(monkeypatch):
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("JWT_WORKSPACE_CLAIM", "workspace_id")


@pytest.fixture
def other_workspace(workspace) -> Workspace:
    other = Workspace(id=f"{workspace.id}-b", name="Beta", subscription_tier="starter")
    other.save()
    return other


def _token_of(workspace_id: str) -> dict[str, Any]:
    return {"sub": "user-1", "workspace_id": workspace_id, "scope": "runs"}


def test_jwt_caller_triggers_only_for_its_own_workspace(
    stack, jwt_mode, workspace, other_workspace, handler
):
    token = _token_of(workspace.id)
    trigger = "/tasks/score-lead/runs"
    status, run = call(handler, "POST", trigger, body=_score_lead(workspace.id), claims=token)
    assert (status, run["workspaceId"]) == (202, workspace.id)
    status, error = call(
        handler, "POST", trigger, body=_score_lead(other_workspace.id), claims=token
    )
    assert (status, error["error"]) == (403, "Forbidden")
    assert "token's workspace" in error["message"]
    assert client.list_runs(other_workspace.id) == []


def test_jwt_caller_cannot_see_or_touch_another_workspaces_run(
    stack, jwt_mode, workspace, other_workspace, handler
):
    theirs = client.trigger("score-lead", {"workspaceId": other_workspace.id, "prospectId": "p-1"})
    mine = _token_of(workspace.id)
    for method, path in [
        ("GET", f"/runs/{theirs.id}"),
        ("POST", f"/runs/{theirs.id}/cancel"),
        ("POST", f"/runs/{theirs.id}/replay"),
    ]:
        status, error = call(handler, method, path, claims=mine)
        assert (status, error["message"]) == (404, f"run {theirs.id} not found"), path
    assert client.retrieve(theirs.id).status == "QUEUED"
    assert [r.id for r in client.list_runs(other_workspace.id)] == [theirs.id]
    status, own_view = call(
        handler, "GET", f"/runs/{theirs.id}", claims=_token_of(other_workspace.id)
    )
    assert (status, own_view["id"]) == (200, theirs.id)


def test_jwt_list_defaults_to_the_callers_workspace_and_refuses_others(
    stack, jwt_mode, workspace, other_workspace, handler
):
    mine = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    client.trigger("score-lead", {"workspaceId": other_workspace.id, "prospectId": "p-1"})
    token = _token_of(workspace.id)
    status, body = call(handler, "GET", "/runs", claims=token)
    assert status == 200
    assert [run["id"] for run in body["runs"]] == [mine.id]
    status, body = call(handler, "GET", "/runs", query={"workspaceId": workspace.id}, claims=token)
    assert [run["id"] for run in body["runs"]] == [mine.id]
    status, error = call(
        handler, "GET", "/runs", query={"workspaceId": other_workspace.id}, claims=token
    )
    assert status == 403
    assert "token's workspace" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        (
            "POST",
            "/tasks/score-lead/runs",
            {"body": {"payload": {"workspaceId": "ws-1", "prospectId": "p-1"}}},
        ),
        ("GET", "/runs", {}),
        ("GET", "/runs/run_any", {}),
    ],
    ids=["trigger", "list", "retrieve"],
)
def test_jwt_token_without_the_workspace_claim_is_403(
    stack, jwt_mode, handler, method, path, options
):
    status, error = call(handler, method, path, claims={"sub": "user-1"}, **options)
    assert status == 403
    assert error == {"error": "Forbidden", "message": "token has no workspace_id claim"}
