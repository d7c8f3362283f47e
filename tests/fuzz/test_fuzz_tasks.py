"""Property-based fuzzing of every registered task (tests/fuzz/fuzzing.py says what is
drawn and which properties must hold): through a plain message on the task's queue, the
client and the HTTP API of the local runtime. A bounded sample per task here; bench/fuzz.py
runs 1,000 inputs per task and counts the outcomes."""

from __future__ import annotations

import uuid

import pytest
from fuzzing import (
    TASK_NAMES,
    Tenants,
    http_client,
    plain_messages,
    send_client,
    send_http,
    send_plain,
    triggers,
)
from hypothesis import HealthCheck, given, settings

#: Inputs per task and way in, in CI (the whole fuzz suite stays well under a minute).
EXAMPLES = 4

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def tenants(local_stack) -> Tenants:
    return Tenants.seed(f"fz-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def their_records_unchanged(tenants):
    before = tenants.snapshot()
    yield
    assert tenants.snapshot() == before, "another workspace's records changed"


@pytest.mark.parametrize("task", TASK_NAMES)
def test_plain_messages(local_stack, tenants, their_records_unchanged, task):
    @fuzz_settings
    @given(item=plain_messages(task, tenants))
    def check(item):
        result = send_plain(local_stack, item)
        assert result.broken == [], (item, result.outcome)

    check()


@pytest.mark.parametrize("task", TASK_NAMES)
def test_client_triggers(local_stack, tenants, their_records_unchanged, task):
    @fuzz_settings
    @given(item=triggers(task, tenants))
    def check(item):
        result = send_client(local_stack, item)
        assert result.broken == [], (item, result.outcome)

    check()


@pytest.mark.parametrize("task", TASK_NAMES)
def test_http_triggers(local_stack, tenants, their_records_unchanged, task):
    api = http_client(local_stack)

    @fuzz_settings
    @given(item=triggers(task, tenants))
    def check(item):
        result = send_http(local_stack, api, item)
        assert result.broken == [], (item, result.outcome)

    check()
