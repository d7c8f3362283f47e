"""Shared fixtures: every AWS resource comes from template.yaml, provisioned into moto."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Never reach a real account, whatever the developer's shell has.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)
for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """The whole application provisioned from template.yaml into in-process moto, once per
    test module (other modules may reset moto)."""
    from crmjobs_local.stack import LocalRuntime

    data_dir = tmp_path_factory.mktemp("data")
    with LocalRuntime(ROOT / "template.yaml", data_dir=data_dir, in_process=True) as local:
        yield local


@pytest.fixture
def stack(local_stack):
    """The module's stack; tests isolate by fresh workspace ids, not by emptying queues."""
    return local_stack


@pytest.fixture
def workspace(stack):
    """A fresh workspace (starter tier) in the stack."""
    from crmjobs.models import Workspace

    ws = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Acme", subscription_tier="starter")
    ws.save()
    return ws
