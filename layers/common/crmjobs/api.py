"""The HTTP trigger API (API Gateway HTTP API, payload format 2.0).

Authorization is IAM by default. With a JWT authorizer (AUTH_MODE=jwt), the token's
workspace claim scopes every call: a caller can trigger and read only its own workspace's
runs, and another workspace's run is "not found".
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmjobs import client, config
from crmjobs.errors import InvalidInput, NotFound
from crmjobs.schemas import payload_schema
from crmjobs.tasks import TASKS, UnknownTask, get_task

app = APIGatewayHttpResolver()


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: dict[str, Any]
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=256)
    delaySeconds: float | None = Field(default=None, ge=0, le=365 * 24 * 3600)
    tags: list[str] = Field(default_factory=list, max_length=10)


def _caller_workspace() -> str | None:
    """The JWT's workspace claim, or None under IAM auth (trusted callers)."""
    if config.env("AUTH_MODE", "iam") != "jwt":
        return None
    claim = config.env("JWT_WORKSPACE_CLAIM", "workspace_id")
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    workspace = claims.get(claim)
    if not workspace:
        raise ForbiddenError(f"token has no {claim} claim")
    return str(workspace)


def _json(status: int, body: Any) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body)
    )


@app.get("/tasks")
def list_tasks():
    return {
        "tasks": [
            {"name": t.name, "family": t.family, "attempts": t.attempts} for t in TASKS.values()
        ]
    }


@app.get("/tasks/<task>/schema")
def task_schema(task: str):
    return payload_schema(get_task(task).name)


@app.post("/tasks/<task>/runs")
def trigger_run(task: str):
    body = TriggerBody.model_validate(app.current_event.json_body or {})
    caller = _caller_workspace()
    if caller is not None and body.payload.get("workspaceId") != caller:
        raise ForbiddenError("payload.workspaceId must be the token's workspace")
    run = client.trigger(
        task,
        body.payload,
        idempotency_key=body.idempotencyKey,
        delay=body.delaySeconds,
        tags=body.tags,
        source="http",
    )
    return _json(200 if run.deduplicated else 202, run.model_dump(mode="json"))


@app.get("/runs")
def list_runs():
    params = app.current_event.query_string_parameters or {}
    caller = _caller_workspace()
    workspace = params.get("workspaceId") or caller
    if not workspace:
        raise InvalidInput("workspaceId is required")
    if caller is not None and workspace != caller:
        raise ForbiddenError("workspaceId must be the token's workspace")
    limit_text = params.get("limit", "50")
    if not limit_text.isdecimal() or int(limit_text) < 1:
        raise InvalidInput("limit must be a positive integer")
    limit = min(int(limit_text), 500)
    runs = client.list_runs(
        workspace,
        task=params.get("task"),
        status=params.get("status"),
        tag=params.get("tag"),
        limit=limit,
    )
    return {"runs": [run.model_dump(mode="json") for run in runs]}


@app.get("/runs/<run_id>")
def retrieve_run(run_id: str):
    return client.retrieve(run_id, _caller_workspace()).model_dump(mode="json")


@app.post("/runs/<run_id>/cancel")
def cancel_run(run_id: str):
    return client.cancel(run_id, _caller_workspace()).model_dump(mode="json")


@app.post("/runs/<run_id>/replay")
def replay_run(run_id: str):
    return _json(202, client.replay(run_id, _caller_workspace()).model_dump(mode="json"))


@app.exception_handler(ValidationError)
def _invalid_body(exc: ValidationError):
    problems = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
    )
    return _json(400, {"error": "BadRequest", "message": problems})


@app.exception_handler(InvalidInput)
def _invalid_input(exc: InvalidInput):
    return _json(400, {"error": "BadRequest", "message": str(exc)})


@app.exception_handler(json.JSONDecodeError)
def _invalid_json(exc: json.JSONDecodeError):
    return _json(400, {"error": "BadRequest", "message": f"body is not JSON: {exc.msg}"})


@app.exception_handler(NotFound)
def _not_found(exc: NotFound):
    return _json(404, {"error": "NotFound", "message": str(exc)})


@app.exception_handler(UnknownTask)
def _unknown_task(exc: UnknownTask):
    return _json(404, {"error": "NotFound", "message": str(exc)})


@app.exception_handler(ForbiddenError)
def _forbidden(exc: ForbiddenError):
    return _json(403, {"error": "Forbidden", "message": exc.msg})
