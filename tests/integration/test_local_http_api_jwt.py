"""The trigger API served locally behind the local JWT authorizer: the stack runs with
the JwtIssuer/JwtAudience parameters (`crmjobs dev --jwt`), so the template gives the
function AUTH_MODE=jwt, and tokens from `crmjobs token` scope every call to their
workspace."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from crmjobs import client
from crmjobs_local.http_api import (
    LOCAL_JWT_AUDIENCE,
    LOCAL_JWT_ISSUER,
    BackgroundServer,
    LocalHttpApi,
    LocalJwtAuthorizer,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """This module's own runtime, with the JWT authorizer's parameters."""
    from crmjobs_local.stack import LocalRuntime

    parameters = {"JwtIssuer": LOCAL_JWT_ISSUER, "JwtAudience": LOCAL_JWT_AUDIENCE}
    data_dir = tmp_path_factory.mktemp("data")
    with LocalRuntime(
        ROOT / "template.yaml", data_dir=data_dir, in_process=True, parameters=parameters
    ) as local:
        yield local


@pytest.fixture(scope="module")
def tokens(local_stack) -> LocalJwtAuthorizer:
    return LocalJwtAuthorizer.in_data_dir(local_stack.data_dir)


@pytest.fixture(scope="module")
def jwt_api(local_stack, tokens):
    with BackgroundServer(LocalHttpApi.for_stack(local_stack, tokens)) as server:
        yield server.url


def test_the_template_turns_jwt_mode_on(stack):
    function = stack.function("TriggerApiFunction")
    assert function.environment["AUTH_MODE"] == "jwt"


def test_without_a_valid_token_the_authorizer_answers_401(stack, jwt_api, tokens):
    assert requests.get(f"{jwt_api}/tasks", timeout=10).status_code == 401
    foreign = LocalJwtAuthorizer(key="another-local-key-of-32-bytes-or-more").issue("ws-1")
    expired = tokens.issue("ws-1", ttl_s=-60)
    for token in (foreign, expired, "garbage"):
        response = requests.get(
            f"{jwt_api}/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}


def test_a_token_scopes_every_call_to_its_workspace(stack, jwt_api, tokens, workspace):
    other = f"{workspace.id}-b"
    theirs = client.trigger("score-lead", {"workspaceId": other, "prospectId": "p-1"})
    bearer = {"Authorization": f"Bearer {tokens.issue(workspace.id)}"}
    mine = requests.post(
        f"{jwt_api}/tasks/score-lead/runs",
        json={"payload": {"workspaceId": workspace.id, "prospectId": "p-1"}},
        headers=bearer,
        timeout=10,
    )
    assert mine.status_code == 202
    refused = requests.post(
        f"{jwt_api}/tasks/score-lead/runs",
        json={"payload": {"workspaceId": other, "prospectId": "p-1"}},
        headers=bearer,
        timeout=10,
    )
    assert refused.status_code == 403
    listed = requests.get(f"{jwt_api}/runs", headers=bearer, timeout=10).json()
    assert [r["id"] for r in listed["runs"]] == [mine.json()["id"]]
    hidden = requests.get(f"{jwt_api}/runs/{theirs.id}", headers=bearer, timeout=10)
    assert hidden.status_code == 404
    assert [r.id for r in client.list_runs(other)] == [theirs.id]


def test_the_local_key_is_kept_private_and_reused(tmp_path):
    first = LocalJwtAuthorizer.in_data_dir(tmp_path)
    again = LocalJwtAuthorizer.in_data_dir(tmp_path)
    assert first.key == again.key and len(first.key) >= 32
    assert (tmp_path / "jwt-signing-key").stat().st_mode & 0o077 == 0
    assert again.workspace_of(first.issue("ws-9")) == "ws-9"
