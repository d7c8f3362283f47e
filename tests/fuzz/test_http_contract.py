"""The HTTP API against its own OpenAPI document, by schemathesis: requests generated from
the document (valid ones and invalid ones) go through the local HTTP API (API Gateway's
payload 2.0 events, as `crmjobs dev` serves it) to the functions behind its routes (the
trigger function, and the unsubscribe function for the unsubscribe links), on the stack
provisioned from template.yaml in moto. No answer is a 5xx and every answer (status,
content type, body) is one the document describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from werkzeug.test import Client

from crmjobs import config
from crmjobs.adapters.signing_key import unsubscribe_key
from crmjobs.domain.unsubscribe_token import UnsubscribeClaim, sign
from crmjobs.models import Contact, Workspace
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


def _genuine_token(stack, contact_id: str) -> str:
    """The token of a genuine link to a contact of the contract's workspace, signed with
    the stack's key."""
    Workspace(id="ws-contract", name="Contract").save()
    address = f"{contact_id}@contract.example"
    Contact(workspace_id="ws-contract", id=contact_id, email=address).save()
    claim = UnsubscribeClaim("ws-contract", "c-1", "contact", contact_id, address)
    with config.function_environment(stack.function("UnsubscribeFunction").environment):
        return sign(claim, unsubscribe_key())


@pytest.fixture(scope="module")
def unsubscribe_token(local_stack) -> str:
    """A generated token is never genuine, so valid requests carry this one."""
    return _genuine_token(local_stack, "ct-1")


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
def test_every_answer_matches_the_document(case, http_api, unsubscribe_token):
    if case.operation.path == "/runs" and "workspaceId" not in (case.query or {}):
        # Optional in the document because a JWT caller's defaults to its own; this
        # stack runs with IAM, where it is required (a 400 says so).
        case.query = {**(case.query or {}), "workspaceId": "ws-contract"}
    if case.operation.path == "/unsubscribe" and not case.meta.generation.mode.is_negative:
        case.query = {**(case.query or {}), "token": unsubscribe_token}
    case.call_and_validate(app=http_api)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_forged_unsubscribe_link_gets_the_documented_4xx(local_stack, http_api, method):
    head, body, signature = _genuine_token(local_stack, "ct-2").split(".")
    forged = f"{head}.{body}.{signature[:-3]}AAA"
    case = schema["/unsubscribe"][method].Case(query={"token": forged})
    # A token the document calls valid (a string) that is not genuine: its 400 is the
    # documented answer, not a refusal of valid data.
    response = case.call_and_validate(app=http_api, excluded_checks=[positive_data_acceptance])
    assert response.status_code == 400 and "not valid" in response.text
    assert Contact.get("ws-contract", "ct-2").email_opt_out is False
