"""The HTTP API against its own OpenAPI document, by schemathesis: requests generated from
the document (valid ones and invalid ones) go through the local HTTP API (API Gateway's
payload 2.0 events, as `crmjobs dev` serves it) to the trigger function's handler, on the
stack provisioned from template.yaml in moto. No answer is a 5xx and every answer (status,
content type, body) is one the document describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from werkzeug.test import Client

from crmjobs_local.http_api import LocalHttpApi

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
#: Generated examples per operation in CI (each is one call of the handler against moto).
#: Only the generate phase: schemathesis' explicit phase adds several dozen boundary cases
#: an operation (minutes in all); drop `phases` below for a thorough run.
EXAMPLES_PER_OPERATION = 10


#: Loaded from the committed document (the test below checks the function serves the same).
schema = schemathesis.openapi.from_path(DOCUMENT)


@pytest.fixture(scope="module")
def http_api(local_stack) -> LocalHttpApi:
    return LocalHttpApi.for_stack(local_stack)


def test_the_served_document_is_the_committed_one(http_api):
    response = Client(http_api).get("/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == json.loads(DOCUMENT.read_text())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_answer_matches_the_document(case, http_api):
    if case.operation.path == "/runs" and "workspaceId" not in (case.query or {}):
        # Optional in the document because a JWT caller's defaults to its own; this
        # stack runs with IAM, where it is required (a 400 says so).
        case.query = {**(case.query or {}), "workspaceId": "ws-contract"}
    case.call_and_validate(app=http_api)
