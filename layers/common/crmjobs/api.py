"""The HTTP trigger API (API Gateway HTTP API, payload format 2.0) and its OpenAPI document.

Authorization is IAM by default. With a JWT authorizer (AUTH_MODE=jwt), the token's
workspace claim scopes every call: a caller can trigger and read only its own workspace's
runs, and another workspace's run is "not found".

Every route's parameters, bodies and answers are typed, so Powertools validates requests
(a bad one is a 400 naming the field), checks answers (one that does not match is a 500,
a bug of ours) and generates the OpenAPI document (`GET /openapi.json`, docs/openapi.json),
which describes the unsubscribe links' routes (crmjobs.campaign_handlers.unsubscribe) too.
Each task has its own trigger route, whose body carries that task's payload model.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
from functools import lru_cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    TypeAdapter,
    create_model,
)

from crmjobs import client, config, limits
from crmjobs.errors import InvalidInput, NotFound
from crmjobs.ledger import RunStatus, RunView
from crmjobs.schemas import PAYLOAD_MODELS, EntityId, payload_schema
from crmjobs.tasks import SYSTEM_WORKSPACE, TASKS, TaskSpec, UnknownTask, get_task

TITLE = "crmjobs trigger API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Trigger a task and list, retrieve, cancel and replay its runs. Calls are signed with "
    "SigV4 (IAM), or carry a JWT whose workspace claim scopes them to that workspace when "
    "the stack has a JWT issuer; API Gateway answers 401/403 before the function for a "
    "missing or invalid credential. The campaigns' unsubscribe links (`/unsubscribe`) take "
    "no credential: their signed token is the proof."
)


def _is_json(media_type: str) -> bool:
    return media_type == content_types.APPLICATION_JSON or media_type.endswith("+json")


def _early_answer(status: int, error: str, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": error, "message": message}),
        "isBase64Encoded": False,
    }


def _is_utf8_text(event: dict[str, Any]) -> bool:
    if not (event.get("isBase64Encoded") and event.get("body")):
        return True
    try:
        base64.b64decode(event["body"]).decode()
    except ValueError:  # not base64, or not UTF-8
        return False
    return True


class JsonApiResolver(APIGatewayHttpResolver):
    """Powertools' resolver for an API that takes JSON bodies only: a POST of another media
    type is answered 415 before Powertools would read its body as a form or a multipart
    (which raises on a multipart without a boundary), and a body that is not UTF-8 (API
    Gateway base64-encodes it) 400 before Powertools would fail decoding it."""

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        method = (event.get("requestContext") or {}).get("http", {}).get("method")
        if method == "POST" and media_type and not _is_json(media_type):
            message = f"the body must be application/json, not {media_type}"
            return _early_answer(415, "UnsupportedMediaType", message)
        if not _is_utf8_text(event):
            return _early_answer(400, "BadRequest", "body is not JSON: not UTF-8 text")
        return super().resolve(event, context)


app = JsonApiResolver(
    enable_validation=True, response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR
)


#: A tag: not blank, and at most the documented length.
Tag = Annotated[
    StrictStr, Field(min_length=1, max_length=limits.MAX_TAG_LENGTH, pattern=r"\S")
]


def _number_not_text(value: Any) -> Any:
    """JSON numbers only ("10" and true are refused); pydantic's int then refuses a
    fraction and takes 10.0, which JSON Schema counts as an integer too."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of seconds")
    return value


WholeSeconds = Annotated[int, BeforeValidator(_number_not_text)]

#: What GET /runs takes as a workspace: a workspace id, or the system-wide tasks' own.
WORKSPACE_PATTERN = f"^{SYSTEM_WORKSPACE}$|{TypeAdapter(EntityId).json_schema()['pattern']}"


class TriggerOptions(BaseModel):
    """What a trigger takes beside the payload (limits: crmjobs.limits)."""

    model_config = ConfigDict(extra="forbid")

    # Optional fields default to None without a null in their schema (a JSON null is
    # refused): the document says exactly what is taken.
    idempotencyKey: StrictStr = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_IDEMPOTENCY_KEY_LENGTH,
        description="The same key for the same task and workspace within 24 hours returns "
        "the first run (status 200, deduplicated) and sends nothing.",
    )
    delaySeconds: WholeSeconds = Field(
        default=None,
        ge=0,
        le=limits.MAX_DELAY_SECONDS,
        description="Whole seconds: up to 900 through the queue, longer by a one-time "
        "schedule; the run is DELAYED until then.",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=limits.MAX_TAGS)


def _trigger_body(spec: TaskSpec) -> type[TriggerOptions]:
    """The body of one task's trigger route: its payload model beside the options."""
    return create_model(
        f"Trigger{spec.resource_prefix}Body",
        __base__=TriggerOptions,
        payload=(
            PAYLOAD_MODELS[spec.name],
            Field(description=f"At most {limits.MAX_PAYLOAD_BYTES:,} bytes as JSON"),
        ),
    )


class ErrorBody(BaseModel):
    """The body of every 4xx the function answers."""

    error: str = Field(description="BadRequest, Forbidden or NotFound")
    message: str


class TaskInfo(BaseModel):
    name: str
    family: str
    attempts: int


class TaskList(BaseModel):
    tasks: list[TaskInfo]


class RunList(BaseModel):
    runs: list[RunView]


def _errors(*codes: int) -> dict[int, Any]:
    descriptions = {
        400: "Bad request: the message names the field and the problem",
        403: "JWT mode: the token has no workspace claim, or names another workspace",
        404: "No such task or run (another workspace's run is not found either)",
        415: "The body is not application/json",
    }
    return {
        code: {
            "description": descriptions[code],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
        for code in codes
    }


def _answer(description: str, model: type[BaseModel] | None = None) -> dict[str, Any]:
    schema = {"model": model} if model else {"schema": {"type": "object"}}
    return {"description": description, "content": {content_types.APPLICATION_JSON: schema}}


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


@app.get("/tasks", summary="List the tasks", tags=["tasks"])
def list_tasks() -> TaskList:
    return TaskList(
        tasks=[TaskInfo(name=t.name, family=t.family, attempts=t.attempts) for t in TASKS.values()]
    )


@app.get(
    "/tasks/<task>/schema",
    summary="A task's payload JSON Schema",
    tags=["tasks"],
    responses={200: _answer("The payload's JSON Schema"), **_errors(404)},
)
def task_schema(task: Annotated[str, Path(description="A task name")]) -> dict[str, Any]:
    return payload_schema(get_task(task).name)


def _trigger(task: str, body: TriggerOptions) -> Response[RunView]:
    payload = app.current_event.json_body["payload"]
    caller = _caller_workspace()
    if caller is not None and payload.get("workspaceId") != caller:
        raise ForbiddenError("payload.workspaceId must be the token's workspace")
    run = client.trigger(
        task,
        payload,
        idempotency_key=body.idempotencyKey,
        delay=body.delaySeconds,
        tags=body.tags,
        source="http",
    )
    return Response(
        status_code=200 if run.deduplicated else 202,
        content_type=content_types.APPLICATION_JSON,
        body=run,
    )


_TRIGGER_RESPONSES = {
    202: _answer("The run, recorded and queued (or DELAYED)", RunView),
    200: _answer("The earlier run of the same idempotency key (deduplicated)", RunView),
    **_errors(400, 403, 415),
}


def _add_trigger_route(spec: TaskSpec) -> None:
    """POST /tasks/<name>/runs, with the task's payload model in its body."""

    def trigger(body):
        return _trigger(spec.name, body)

    trigger.__name__ = f"trigger_{spec.name.replace('-', '_')}"
    trigger.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "body",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[_trigger_body(spec), Body()],
            )
        ],
        return_annotation=Response[RunView],
    )
    app.post(
        f"/tasks/{spec.name}/runs",
        summary=f"Trigger {spec.name}",
        tags=[spec.family],
        operation_id=trigger.__name__,
        responses=_TRIGGER_RESPONSES,
    )(trigger)


for _spec in TASKS.values():
    _add_trigger_route(_spec)


@app.post("/tasks/<task>/runs", include_in_schema=False)
def trigger_unknown_task(task: str) -> None:
    """Each task has its own route, so only a name that is not a task gets here: the
    registry's UnknownTask answers 404."""
    get_task(task)


@app.get(
    "/runs",
    summary="List a workspace's runs, newest first",
    tags=["runs"],
    responses={200: _answer("The runs", RunList), **_errors(400, 403, 404)},
)
def list_runs(
    # Optional parameters default to None without a null in their schema: a query string
    # has no null.
    workspaceId: Annotated[
        str,
        Query(
            pattern=WORKSPACE_PATTERN,
            description="Required with IAM; a JWT caller's own workspace by default",
        ),
    ] = None,
    task: Annotated[str, Query(description="Only this task's runs")] = None,
    status: Annotated[
        str,
        Query(description="Only runs in this status", json_schema_extra={"enum": list(RunStatus)}),
    ] = None,
    tag: Annotated[str, Query(description="Only runs with this tag")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunList:
    caller = _caller_workspace()
    workspace = workspaceId or caller
    if not workspace:
        raise InvalidInput("workspaceId is required")
    if caller is not None and workspace != caller:
        raise ForbiddenError("workspaceId must be the token's workspace")
    runs = client.list_runs(workspace, task=task, status=status, tag=tag, limit=limit)
    return RunList(runs=runs)


RunId = Annotated[str, Path(description="A run id (run_...)")]


@app.get(
    "/runs/<run_id>",
    summary="A run",
    tags=["runs"],
    responses={200: _answer("The run", RunView), **_errors(403, 404)},
)
def retrieve_run(run_id: RunId) -> RunView:
    return client.retrieve(run_id, _caller_workspace())


@app.post(
    "/runs/<run_id>/cancel",
    summary="Cancel a run",
    tags=["runs"],
    responses={200: _answer("The run, canceled", RunView), **_errors(400, 403, 404, 415)},
)
def cancel_run(run_id: RunId) -> RunView:
    return client.cancel(run_id, _caller_workspace())


@app.post(
    "/runs/<run_id>/replay",
    summary="Replay a run: a new run of the same task and payload",
    tags=["runs"],
    responses={202: _answer("The new run", RunView), **_errors(403, 404, 415)},
)
def replay_run(run_id: RunId) -> Response[RunView]:
    run = client.replay(run_id, _caller_workspace())
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=run)


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document: every route of the stack's HTTP API, the unsubscribe
    links' (their own function) too. Request validation errors are answered 400 (ErrorBody,
    or the unsubscribe page), so Powertools' default 422 entries are left out."""
    # Only the document needs the unsubscribe routes: imported here, not at cold start.
    from crmjobs.campaign_handlers.unsubscribe import unsubscribe_api

    document = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=VERSION, description=DESCRIPTION)
    )
    unsubscribe_document = json.loads(
        unsubscribe_api.get_openapi_json_schema(title=TITLE, version=VERSION)
    )
    document["paths"].update(unsubscribe_document["paths"])
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for unused in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(unused, None)
    return document


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> dict[str, Any]:
    return openapi_document()


def _problem(error: dict[str, Any], task: str | None) -> str:
    location = [str(part) for part in error["loc"]]
    if location[:1] == ["body"]:
        location = location[1:]
    if task and location[:1] == ["payload"] and len(location) > 1:
        return f"invalid {task} payload: {'.'.join(location[1:])}: {error['msg']}"
    if location[:1] in (["query"], ["path"]):
        location = location[1:]
    return f"{'.'.join(location) or 'body'}: {error['msg']}"


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError):
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        reason = next(e["ctx"]["error"] for e in errors if e["type"] == "json_invalid")
        return _json(400, {"error": "BadRequest", "message": f"body is not JSON: {reason}"})
    parts = app.current_event.path.strip("/").split("/")
    task = parts[1] if len(parts) == 3 and parts[0] == "tasks" and parts[1] in TASKS else None
    problems = "; ".join(_problem(error, task) for error in errors)
    return _json(400, {"error": "BadRequest", "message": problems})


@lru_cache(maxsize=1)
def _documented_methods() -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each documented path (as a pattern of its segments) with its methods."""
    return [
        (
            re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
            frozenset(method.upper() for method in operations),
        )
        for path, operations in openapi_document()["paths"].items()
    ]


@app.not_found
def _no_route(exc: Exception):
    """404 for a path the API does not have, 405 (with Allow) for a method a path lacks."""
    request = app.current_event
    allowed = set().union(
        *(methods for pattern, methods in _documented_methods() if pattern.match(request.path))
    )
    if allowed and request.http_method not in allowed:
        return Response(
            status_code=405,
            content_type=content_types.APPLICATION_JSON,
            headers={"Allow": ", ".join(sorted(allowed))},
            body=json.dumps(
                {
                    "error": "MethodNotAllowed",
                    "message": f"{request.path} takes {', '.join(sorted(allowed))}",
                }
            ),
        )
    return _json(
        404, {"error": "NotFound", "message": f"no route {request.http_method} {request.path}"}
    )


@app.exception_handler(InvalidInput)
def _invalid_input(exc: InvalidInput):
    return _json(400, {"error": "BadRequest", "message": str(exc)})


@app.exception_handler(NotFound)
def _not_found(exc: NotFound):
    return _json(404, {"error": "NotFound", "message": str(exc)})


@app.exception_handler(UnknownTask)
def _unknown_task(exc: UnknownTask):
    return _json(404, {"error": "NotFound", "message": str(exc)})


@app.exception_handler(ForbiddenError)
def _forbidden(exc: ForbiddenError):
    return _json(403, {"error": "Forbidden", "message": exc.msg})
