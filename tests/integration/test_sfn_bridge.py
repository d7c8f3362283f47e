"""Step Functions in moto running the project's Python handlers in-process."""

from __future__ import annotations

import decimal
import inspect
import json
import threading
import time
import uuid
from pathlib import Path
from unittest.mock import patch

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from crmjobs import config
from crmjobs_local import sfn_bridge
from crmjobs_local.context import LambdaContext, load_handler
from crmjobs_local.provision import LocalResources, provision
from crmjobs_local.sfn_bridge import (
    HOOK_PARAMETERS,
    PINNED_MOTO_VERSION,
    BridgeHookMoved,
    LambdaBridge,
    check_hook_point,
)

REPO = Path(__file__).resolve().parents[2]
MINI_TEMPLATE = REPO / "tests" / "fixtures" / "mini_template.yaml"
REGION = "us-east-1"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


class TransientError(Exception):
    """The error name the fixture state machine retries (twice, one second apart)."""


def run_fan_out(resources: LocalResources, items: list[int], **client_options) -> dict:
    """Start the fixture state machine on `items` and wait for it to finish."""
    stepfunctions = boto3.client("stepfunctions", region_name=REGION, **client_options)
    execution = stepfunctions.start_execution(
        stateMachineArn=resources.state_machines["FanOutStateMachine"],
        name=f"test-{uuid.uuid4().hex}",
        input=json.dumps({"items": items}),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            assert described["status"] == "SUCCEEDED", described
            return json.loads(described["output"])
        time.sleep(0.05)
    raise AssertionError("the execution did not finish within 30 s")


def invoke_directly(function_name: str, payload: object) -> tuple[str | None, object]:
    response = boto3.client("lambda", region_name=REGION).invoke(
        FunctionName=function_name, Payload=json.dumps(payload)
    )
    return response.get("FunctionError"), json.loads(response["Payload"].read())


@pytest.fixture(scope="class")
def stack() -> LocalResources:
    """The mini stack under mock_aws, for one test class (the server test needs no mock)."""
    with mock_aws(config=MOTO_CONFIG):
        yield provision(MINI_TEMPLATE)


@pytest.fixture
def bridge(stack):
    with LambdaBridge().installed() as installed:
        yield installed


class TestUnderMockAws:
    """One provisioned mini stack for the class; each test installs its own bridge."""

    def test_template_handler_runs_in_process_inside_a_map(self, stack, bridge):
        bridge.register_resources(stack)
        process = stack.functions["ProcessItemFunction"]
        output = run_fan_out(stack, [3, -1, 5])
        successes = [result for result in output if "square" in result]
        assert [(result["item"], result["square"]) for result in successes] == [(3, 9), (5, 25)]
        for result in successes:
            assert result["table"] == stack.tables["ItemsTable"]
            assert (result["function_name"], result["memory_mb"]) == (process.name, 256)
            assert 0 < result["remaining_ms"] <= 10_000  # the function's own Timeout: 10
        # The handler's ValueError is not retried (Retry names TransientError) and is caught.
        assert output[1] == {"failed": -1, "error": "ValueError"}

    def test_a_transient_failure_is_retried(self, stack, bridge):
        attempts: dict[int, int] = {}
        lock = threading.Lock()

        def flaky(event, context):
            with lock:
                attempts[event["item"]] = attempts.get(event["item"], 0) + 1
                first_attempt = attempts[event["item"]] == 1
            if first_attempt:
                raise TransientError("try again")
            return {"item": event["item"], "square": event["item"] ** 2}

        bridge.register(stack.functions["ProcessItemFunction"].arn, flaky)
        output = run_fan_out(stack, [2, 4])
        assert output == [{"item": 2, "square": 4}, {"item": 4, "square": 16}]
        assert attempts == {2: 2, 4: 2}

    def test_exhausted_retries_reach_the_catch(self, stack, bridge):
        attempts: list[int] = []

        def always_failing(event, context):
            attempts.append(event["item"])
            raise TransientError("still down")

        bridge.register(stack.functions["ProcessItemFunction"].name, always_failing)
        output = run_fan_out(stack, [7])
        assert output == [{"failed": 7, "error": "TransientError"}]
        assert attempts == [7, 7, 7]  # the first attempt plus MaxAttempts: 2

    def test_map_respects_max_concurrency(self, stack, bridge):
        lock = threading.Lock()
        running = 0
        peak = 0

        def slow(event, context):
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.3)
            with lock:
                running -= 1
            return {"item": event["item"]}

        bridge.register(stack.functions["ProcessItemFunction"].name, slow)
        output = run_fan_out(stack, list(range(6)))
        assert output == [{"item": item} for item in range(6)]
        assert peak == 2  # the Map's MaxConcurrency

    def test_exceptions_answer_with_lambdas_error_payload(self, stack, bridge):
        def broken(event, context):
            raise KeyError("workspace_id")

        name = stack.functions["ProcessItemFunction"].name
        bridge.register(name, broken)
        function_error, payload = invoke_directly(name, {"any": "event"})
        assert function_error == "Unhandled"
        assert payload["errorType"] == "KeyError"
        assert payload["errorMessage"] == "'workspace_id'"
        assert any("in broken" in frame for frame in payload["stackTrace"])

    def test_results_serialise_like_the_python_runtime(self, stack, bridge):
        name = stack.functions["ProcessItemFunction"].name
        bridge.register(name, lambda event, context: {"score": decimal.Decimal("0.75")})
        assert invoke_directly(name, {}) == (None, {"score": 0.75})

        bridge.register(name, lambda event, context: {"handle": object()})
        function_error, payload = invoke_directly(name, {})
        assert function_error == "Unhandled"
        assert payload["errorType"] == "Runtime.MarshalError"

    def test_a_handler_overrunning_its_timeout_reports_a_timeout(self, stack, bridge):
        name = stack.functions["ProcessItemFunction"].name
        bridge.register(name, lambda event, context: time.sleep(0.1), timeout_seconds=0.05)
        function_error, payload = invoke_directly(name, {})
        assert function_error == "Unhandled"
        assert payload["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 0.05 seconds" in payload["errorMessage"]

    def test_unregistered_and_unknown_functions_fail_loudly(self, stack, bridge):
        bridge.register_function(stack.functions["ProcessItemFunction"])
        function_error, payload = invoke_directly(stack.functions["WorkFunction"].name, {})
        assert function_error == "Unhandled"
        assert payload["errorType"] == "Local.HandlerNotRegistered"
        assert stack.functions["ProcessItemFunction"].name in payload["errorMessage"]
        with pytest.raises(ClientError) as raised:
            invoke_directly("no-such-function", {})
        assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    def test_handlers_see_their_own_function_environment(self, stack):
        loaded = []

        def loader(function):
            loaded.append(function.logical_id)

            def read_environment(event, context):
                return {
                    "stage": config.env("STAGE"),
                    "state_machine": config.env("STATE_MACHINE_ARN_FAN_OUT"),
                }

            return read_environment

        bridge = LambdaBridge(function_loader=loader)
        bridge.register_resources(stack)
        with bridge.installed():
            work = invoke_directly(stack.functions["WorkFunction"].name, {})
            process = invoke_directly(stack.functions["ProcessItemFunction"].name, {})
            invoke_directly(stack.functions["WorkFunction"].name, {})
        assert work == (
            None,
            {
                "stage": "local-work",
                "state_machine": stack.state_machines["FanOutStateMachine"],
            },
        )
        assert process == (None, {"stage": "local", "state_machine": None})
        assert loaded == ["WorkFunction", "ProcessItemFunction"]  # loaded once each, on first use


def test_same_named_handler_files_do_not_collide(tmp_path):
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.py").write_text(
            f"def handler(event, context):\n    return {folder!r}\n"
        )
    first = load_handler(tmp_path / "first" / "app.py")
    second = load_handler(tmp_path / "second" / "app.py")
    assert (first({}, None), second({}, None)) == ("first", "second")
    assert load_handler(tmp_path / "first" / "app.py") is first
    with pytest.raises(FileNotFoundError):
        load_handler(tmp_path / "missing" / "app.py")


def test_lambda_context_counts_down_from_the_timeout():
    context = LambdaContext(
        function_name="fn",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        memory_limit_in_mb=128,
        timeout_seconds=2,
    )
    assert 1900 < context.get_remaining_time_in_millis() <= 2000
    assert context.log_group_name == "/aws/lambda/fn"
    assert context.aws_request_id != LambdaContext("fn", "arn", 128, 2).aws_request_id


def test_hook_point_matches_the_pinned_moto():
    assert check_hook_point() is LambdaSimpleBackend
    assert PINNED_MOTO_VERSION == "5.2.5"
    signature = inspect.signature(LambdaSimpleBackend.__dict__["invoke"])
    assert tuple(signature.parameters) == HOOK_PARAMETERS


def test_install_refuses_another_moto_version(monkeypatch):
    monkeypatch.setattr(sfn_bridge, "version", lambda package: "5.2.1")
    with pytest.raises(BridgeHookMoved, match="moto 5.2.1 is installed"):
        LambdaBridge().install()


def test_install_refuses_a_changed_hook_signature(monkeypatch):
    def invoke(self, function_name, qualifier, body, headers):
        return b""

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    with pytest.raises(BridgeHookMoved, match="does not match"):
        LambdaBridge().install()


def test_installing_patches_moto_once_and_uninstalling_restores_it():
    original = LambdaSimpleBackend.__dict__["invoke"]
    bridge = LambdaBridge()
    with bridge.installed():
        assert LambdaSimpleBackend.__dict__["invoke"] is not original
        with pytest.raises(RuntimeError, match="already installed"):
            LambdaBridge().install()
    assert LambdaSimpleBackend.__dict__["invoke"] is original


def test_state_machine_on_a_moto_server(monkeypatch):
    """The embedded runtime's shape: a moto server in this process, the bridge, MOTO_PORT."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # The state machine interpreter calls Lambda at localhost:$MOTO_PORT.
        monkeypatch.setenv("MOTO_PORT", str(port))
        with patch.dict(default_user_config):
            requests.post(f"{endpoint}/moto-api/config", json=MOTO_CONFIG, timeout=5)
            resources = provision(MINI_TEMPLATE, endpoint_url=endpoint, stack_name="served")
            assert resources.queues["WorkQueue"].url.startswith(endpoint)
            bridge = LambdaBridge()
            bridge.register_resources(resources)
            with bridge.installed():
                output = run_fan_out(
                    resources,
                    [6],
                    endpoint_url=endpoint,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
    finally:
        server.stop()
    assert output[0]["square"] == 36
    assert output[0]["function_name"] == "served-ProcessItemFunction"
