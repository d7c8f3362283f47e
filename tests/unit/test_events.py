"""The sample events in events/ (for `sam local invoke -e` and `crmjobs invoke --event`)
match what each function's trigger in template.yaml really sends it.

A function's trigger is read from the template: its SQS queue (and so its task), its
DynamoDB stream, the HTTP API integration, or the step it fills in a state machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEventV2,
    DynamoDBStreamEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    DynamoDBStreamModel,
    SqsModel,
)

from crmjobs import api, client
from crmjobs.domain.feedback import parse_ses_event
from crmjobs.schemas import parse_payload
from crmjobs.services import campaign_sending
from crmjobs.services.fanout import BatchInput, FinishInput, PageStep
from crmjobs.tasks import TASKS
from crmjobs_local.context import LambdaContext, load_handler
from crmjobs_local.template import DynamoDbStreamEventSource, SqsEventSource, Template

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
FUNCTIONS_DIR = REPO_ROOT / "functions"
TEMPLATE = Template.load(REPO_ROOT / "template.yaml")

TASK_BY_QUEUE = {f"{task.resource_prefix}Queue": task.name for task in TASKS.values()}
#: The state machine substitution a step function fills, and the input model of that step.
STEP_INPUT_BY_SUBSTITUTION = {
    "ListPageFunctionArn": PageStep,
    "ProcessBatchFunctionArn": BatchInput,
    "FinishBulkRunFunctionArn": FinishInput,
    "AudiencePageFunctionArn": campaign_sending.ListingStep,
    "RecipientsPageFunctionArn": campaign_sending.ListingStep,
    "SendBatchFunctionArn": campaign_sending.BatchInput,
    "FinishFunctionArn": campaign_sending.FinishInput,
}
RUN_ID = re.compile(r"^run_[0-9a-f]{32}$")
#: The client functions the HTTP routes end in; a route reaching one proves it resolved.
CLIENT_CALLS = ("trigger", "list_runs", "retrieve", "cancel", "replay")


def _function_dirs() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/app.py"))


def _event_files() -> list[Path]:
    return sorted(EVENTS_DIR.glob("*.json"))


def _owner(event_file: Path) -> str | None:
    """The function dir an event file is for: `score_lead_plain` -> `score_lead` (longest
    matching dir name, so `index_documents_batch` is not taken for `index_document`)."""
    owners = [
        name
        for name in _function_dirs()
        if event_file.stem == name or event_file.stem.startswith(f"{name}_")
    ]
    return max(owners, key=len, default=None)


def _events_for(function_dir: str) -> list[Path]:
    return [path for path in _event_files() if _owner(path) == function_dir]


def _get_att_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    return None


def _trigger_of(function_dir: str) -> tuple[str, Any]:
    """(kind, detail) of what invokes the function, from template.yaml."""
    [(logical_id, function)] = [
        (logical_id, function)
        for logical_id, function in TEMPLATE.functions().items()
        if Path(function.code_uri).name == function_dir
    ]
    for source in function.events:
        if isinstance(source, SqsEventSource) and source.queue_logical_id in TASK_BY_QUEUE:
            return "sqs", TASK_BY_QUEUE[source.queue_logical_id]
        if isinstance(source, SqsEventSource):
            return "queue", source.queue_logical_id
        if isinstance(source, DynamoDbStreamEventSource):
            events = function.properties["Events"]
            [properties] = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
            return "stream", (source.table_logical_id, properties.get("FilterCriteria"))
    for resource in TEMPLATE.resources.values():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::ApiGatewayV2::Integration":
            if _get_att_target(properties.get("IntegrationUri")) == logical_id:
                return "http", properties["PayloadFormatVersion"]
        if resource["Type"] == "AWS::Serverless::StateMachine":
            for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
                if _get_att_target(value) == logical_id:
                    return "step", STEP_INPUT_BY_SUBSTITUTION[key]
    raise AssertionError(f"{logical_id}: no trigger found in template.yaml")


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize("event_file", _event_files(), ids=lambda path: path.name)
def test_event_file_is_json_for_a_function(event_file):
    assert isinstance(_load(event_file), dict)
    assert _owner(event_file) is not None, f"{event_file.name} names no function in functions/"


@pytest.mark.parametrize("function_dir", _function_dirs())
def test_every_function_has_an_event(function_dir):
    assert _events_for(function_dir), f"events/ has no {function_dir}*.json"


def _cases(kind: str) -> list[tuple[Path, Any]]:
    """(event file, trigger detail) of every event of the functions triggered by `kind`."""
    return [
        (path, detail)
        for name in _function_dirs()
        for found, detail in [_trigger_of(name)]
        if found == kind
        for path in _events_for(name)
    ]


def _case_id(value: Any) -> str:
    if isinstance(value, Path):
        return value.name
    return value if isinstance(value, str) else getattr(value, "__name__", "")


@pytest.mark.parametrize(("event_file", "task"), _cases("sqs"), ids=_case_id)
def test_sqs_event_is_a_lambda_sqs_event_with_a_valid_payload(event_file, task):
    event = _load(event_file)
    SqsModel.model_validate(event)
    for record in SQSEvent(event).records:
        assert record.event_source_arn.endswith(f"-{task}"), "from another task's queue"
        assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()
        body = json.loads(record.body)
        if "runId" in body:  # the client's envelope
            assert set(body) == {"runId", "payload"}
            assert RUN_ID.match(body["runId"])
            body = body["payload"]
        parse_payload(task, body)


def test_score_lead_has_an_envelope_and_a_plain_message():
    bodies = [
        json.loads(record.body)
        for path in _events_for("score_lead")
        for record in SQSEvent(_load(path)).records
    ]
    assert {"runId" in body for body in bodies} == {True, False}


@pytest.mark.parametrize(("event_file", "model"), _cases("step"), ids=_case_id)
def test_step_input_validates_as_the_steps_model(event_file, model):
    model.model_validate(_load(event_file))


@pytest.mark.parametrize(("event_file", "trigger"), _cases("stream"), ids=_case_id)
def test_stream_event_passes_the_filter_and_carries_the_tables_keys(event_file, trigger):
    table_logical_id, filter_criteria = trigger
    event = _load(event_file)
    DynamoDBStreamModel.model_validate(event)
    key_names = {
        key["AttributeName"]
        for key in TEMPLATE.resources[table_logical_id]["Properties"]["KeySchema"]
    }
    patterns = [json.loads(f["Pattern"]) for f in (filter_criteria or {}).get("Filters", [])]
    for record in DynamoDBStreamEvent(event).records:
        assert all(record.raw_event["eventName"] in p["eventName"] for p in patterns)
        assert set(record.dynamodb.keys) == key_names


class _RouteReached(Exception):
    """Raised by the client call a resolved route makes, so no AWS call happens."""


@pytest.fixture
def client_calls(monkeypatch) -> list[tuple[str, tuple, dict]]:
    """Every client call the API makes is recorded and stops the request there."""
    calls: list[tuple[str, tuple, dict]] = []

    def recorder(name: str):
        def record(*args, **kwargs):
            calls.append((name, args, kwargs))
            raise _RouteReached(name)

        return record

    for name in CLIENT_CALLS:
        monkeypatch.setattr(client, name, recorder(name))
    return calls


@pytest.mark.parametrize(("event_file", "queue"), _cases("queue"), ids=_case_id)
def test_feedback_event_is_an_sqs_record_of_a_tagged_ses_event(event_file, queue):
    event = _load(event_file)
    SqsModel.model_validate(event)
    assert queue == "CampaignFeedbackQueue"
    for record in SQSEvent(event).records:
        assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()
        parsed = parse_ses_event(json.loads(record.body)["detail"])
        assert parsed is not None and parsed.addresses, "its tags name no recipient"


@pytest.mark.parametrize(("event_file", "version"), _cases("http"), ids=_case_id)
def test_http_event_resolves_a_route_of_the_api(event_file, version, client_calls, monkeypatch):
    if _owner(event_file) == "unsubscribe":
        _unsubscribe_event_reaches_its_route(event_file, version, monkeypatch)
        return
    event = _load(event_file)
    assert event["version"] == version
    APIGatewayProxyEventV2Model.model_validate(event)
    context = LambdaContext(
        function_name="TriggerApiFunction",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:TriggerApiFunction",
        memory_limit_in_mb=256,
        timeout_seconds=29,
    )
    try:
        response = api.app.resolve(event, context)
    except _RouteReached:
        [(name, args, _)] = client_calls
        request = APIGatewayProxyEventV2(event)
        if name == "trigger":
            assert args == (request.path.split("/")[2], request.json_body["payload"])
        if name == "list_runs":
            assert args == (request.query_string_parameters["workspaceId"],)
    else:
        assert response["statusCode"] < 400, response["body"]


def _unsubscribe_event_reaches_its_route(event_file: Path, version: str, monkeypatch) -> None:
    """The unsubscribe route's samples carry a token not signed with the stack's key: the
    handler answers 400 (and would change nothing)."""
    from crmjobs.services import unsubscribe

    event = _load(event_file)
    assert event["version"] == version
    APIGatewayProxyEventV2Model.model_validate(event)
    monkeypatch.setattr(unsubscribe, "unsubscribe_key", lambda: b"k" * 32)
    handler = load_handler(FUNCTIONS_DIR / "unsubscribe" / "app.py", "handler")
    context = LambdaContext(
        function_name="UnsubscribeFunction",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:UnsubscribeFunction",
        memory_limit_in_mb=512,
        timeout_seconds=10,
    )
    response = handler(event, context)
    assert response["statusCode"] == 400 and "not valid" in response["body"]
