"""The trigger API served locally over real HTTP on 127.0.0.1: requests become API Gateway
HTTP API (payload 2.0) events for the trigger function's handler (IAM mode: no token)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from crmjobs.models import Prospect
from crmjobs_local.http_api import (
    LOCAL_JWT_AUDIENCE,
    LOCAL_JWT_ISSUER,
    ApiFunction,
    BackgroundServer,
    LocalHttpApi,
    LocalJwtAuthorizer,
    Route,
    http_event,
    http_response,
    template_routes,
)
from crmjobs_local.template import Template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(local_stack):
    with BackgroundServer(LocalHttpApi.for_stack(local_stack)) as server:
        yield server.url


def test_trigger_over_http_then_retrieve_and_list(stack, api, workspace):
    Prospect(
        workspace_id=workspace.id, id="p-1", name="Ada", email="ada@acme.com", stage="new"
    ).save()
    response = requests.post(
        f"{api}/tasks/score-lead/runs",
        json={"payload": {"workspaceId": workspace.id, "prospectId": "p-1"}, "tags": ["curl"]},
        timeout=10,
    )
    assert response.status_code == 202
    assert response.headers["Content-Type"] == "application/json"
    run = response.json()
    assert (run["status"], run["source"], run["tags"]) == ("QUEUED", "http", ["curl"])
    stack.source_for_task("score-lead").poll_once()
    done = requests.get(f"{api}/runs/{run['id']}", timeout=10).json()
    assert done["status"] == "COMPLETED"
    listed = requests.get(
        f"{api}/runs", params={"workspaceId": workspace.id, "task": "score-lead"}, timeout=10
    )
    assert [r["id"] for r in listed.json()["runs"]] == [run["id"]]


def test_bad_requests_get_the_handlers_4xx(stack, api):
    not_json = requests.post(
        f"{api}/tasks/score-lead/runs",
        data='{"payload": ',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert not_json.status_code == 400 and "body is not JSON" in not_json.json()["message"]
    unknown = requests.get(f"{api}/tasks/nope/schema", timeout=10)
    assert unknown.status_code == 404 and "unknown task 'nope'" in unknown.json()["message"]
    schema = requests.get(f"{api}/tasks/score-lead/schema", timeout=10).json()
    assert set(schema["required"]) == {"workspaceId", "prospectId"}


def test_the_api_listens_on_loopback_only(api):
    assert api.startswith("http://127.0.0.1:")


def test_request_becomes_a_payload_2_0_event():
    environ = EnvironBuilder(
        method="POST",
        path="/tasks/score-lead/runs",
        query_string="tag=a&tag=b&limit=5",
        headers={"X-Trace": "t1", "Cookie": "a=1; b=2", "Host": "127.0.0.1:3000"},
        data=b"\x00\x01binary",
        content_type="application/octet-stream",
    ).get_environ()
    event = http_event(
        Request(environ),
        route_key="ANY /{proxy+}",
        path_parameters={"proxy": "tasks/score-lead/runs"},
        authorizer={"iam": {}},
        account_id="123456789012",
    )
    assert (event["version"], event["routeKey"]) == ("2.0", "ANY /{proxy+}")
    assert event["rawPath"] == "/tasks/score-lead/runs"
    assert event["rawQueryString"] == "tag=a&tag=b&limit=5"
    assert event["queryStringParameters"] == {"tag": "a,b", "limit": "5"}
    assert event["headers"]["x-trace"] == "t1" and "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01binary"
    context = event["requestContext"]
    assert context["http"]["method"] == "POST" and context["stage"] == "$default"
    assert context["authorizer"] == {"iam": {}}
    assert event["pathParameters"] == {"proxy": "tasks/score-lead/runs"}


def test_a_json_body_that_is_not_utf8_is_base64_encoded_and_answered_400(stack, api):
    """Found by schemathesis: such a body made the local server fail (a 500)."""
    response = requests.post(
        f"{api}/tasks/score-lead/runs",
        data=b"\x80\xff",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400 and "body is not JSON" in response.json()["message"]


def test_routes_are_the_templates_in_api_gateways_order(stack):
    template = Template.load(ROOT / "template.yaml")
    context = template.context(region="us-east-1", account_id="123456789012", stack_name="s")
    routes = template_routes(template, context)
    keys = [route.key for route in routes]
    assert keys[-1] == "ANY /{proxy+}"  # greedy: tried last
    assert {"GET /unsubscribe", "POST /unsubscribe"} <= set(keys)
    by_key = {route.key: route for route in routes}
    assert by_key["ANY /{proxy+}"].function == "TriggerApiFunction"
    assert by_key["ANY /{proxy+}"].authorization == "AWS_IAM"
    assert by_key["GET /unsubscribe"].authorization == "NONE"
    proxy = by_key["ANY /{proxy+}"]
    assert proxy.match("DELETE", "/runs/r1") == {"proxy": "runs/r1"}
    assert by_key["GET /unsubscribe"].match("POST", "/unsubscribe") is None
    assert Route("GET /runs/{id}", "F", "NONE").match("GET", "/runs/r1") == {"id": "r1"}
    assert Route("GET /runs/{id}", "F", "NONE").match("GET", "/runs/r1/x") is None


def _recording_api(parameters: dict[str, str] | None = None, authorizer=None):
    """The template's routes, each function answering 204 and noting what it was given."""
    template = Template.load(ROOT / "template.yaml")
    context = template.context(
        region="us-east-1", account_id="123456789012", stack_name="s", parameters=parameters
    )
    routes = template_routes(template, context)
    calls: list[tuple] = []

    def recorder(name: str):
        def invoke(event, context):
            authorizer = event["requestContext"].get("authorizer")
            calls.append(
                (name, event["routeKey"], event.get("pathParameters"), sorted(authorizer or {}))
            )
            return {"statusCode": 204}

        return invoke

    functions = {
        route.function: ApiFunction(recorder(route.function), name=route.function, arn="arn")
        for route in routes
    }
    api = LocalHttpApi(routes, functions, account_id="123456789012", authorizer=authorizer)
    return Client(api), calls


def test_requests_take_their_routes_function_and_authorization():
    client, calls = _recording_api()
    assert client.get("/unsubscribe?token=t").status_code == 204
    assert client.post("/unsubscribe").status_code == 204
    assert client.get("/runs/r1").status_code == 204
    assert client.delete("/unsubscribe").status_code == 204  # no DELETE route: the proxy's
    assert calls == [
        ("UnsubscribeFunction", "GET /unsubscribe", None, []),
        ("UnsubscribeFunction", "POST /unsubscribe", None, []),
        ("TriggerApiFunction", "ANY /{proxy+}", {"proxy": "runs/r1"}, ["iam"]),
        ("TriggerApiFunction", "ANY /{proxy+}", {"proxy": "unsubscribe"}, ["iam"]),
    ]


def test_with_the_jwt_parameters_only_the_proxy_route_takes_tokens(tmp_path):
    tokens = LocalJwtAuthorizer.in_data_dir(tmp_path)
    client, calls = _recording_api(
        {"JwtIssuer": LOCAL_JWT_ISSUER, "JwtAudience": LOCAL_JWT_AUDIENCE}, tokens
    )
    assert client.get("/runs").status_code == 401
    assert client.get("/unsubscribe?token=t").status_code == 204
    bearer = {"Authorization": f"Bearer {tokens.issue('ws-1')}"}
    assert client.get("/runs", headers=bearer).status_code == 204
    assert [call[3] for call in calls] == [[], ["jwt"]]
    with pytest.raises(ValueError, match="take JWTs"):
        _recording_api({"JwtIssuer": LOCAL_JWT_ISSUER, "JwtAudience": LOCAL_JWT_AUDIENCE})


def test_function_result_becomes_the_response():
    response = http_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain"},
            "cookies": ["a=1", "b=2; Path=/"],
            "body": base64.b64encode(b"made").decode(),
            "isBase64Encoded": True,
        }
    )
    assert (response.status_code, response.get_data()) == (201, b"made")
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2; Path=/"]
    plain = http_response({"ok": True})  # no statusCode: a JSON body, 200
    assert (plain.status_code, json.loads(plain.get_data())) == (200, {"ok": True})
