"""Run the project's Python handlers when a Step Functions Task invokes a Lambda in moto.

Without Docker, moto's "simple" Lambda backend only echoes the payload back. The bridge
replaces `LambdaSimpleBackend.invoke` (moto's internal API, hence the pinned version and
the signature check at install time) so that an invocation runs the registered handler
in-process and answers as Lambda would: the JSON result, or for an exception the
`x-amz-function-error: Unhandled` header and Lambda's error payload, so Retry and Catch
match on the exception's type name.

Handlers run in whichever thread moto invokes them from (a Map state runs up to
MaxConcurrency iterations at once), with the function's own resolved environment overlaid
through `crmjobs.config.function_environment` (a context variable, so threads do not mix).
"""

from __future__ import annotations

import decimal
import inspect
import json
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from crmjobs.config import function_environment
from crmjobs_local.context import Handler, LambdaContext, load_handler
from crmjobs_local.provision import LocalFunction, LocalResources
from crmjobs_local.template import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_SECONDS

PINNED_MOTO_VERSION = "5.2.5"
HOOK_PARAMETERS = ("self", "function_name", "qualifier", "body", "headers", "response_headers")

FunctionLoader = Callable[[LocalFunction], Handler]


class BridgeHookMoved(RuntimeError):
    """moto's version or its Lambda invoke hook no longer matches what the bridge patches."""


def check_hook_point() -> type:
    """Return moto's LambdaSimpleBackend after checking the pinned version and hook signature."""
    installed_version = version("moto")
    if installed_version != PINNED_MOTO_VERSION:
        raise BridgeHookMoved(
            f"moto {installed_version} is installed; the Step Functions bridge patches an "
            f"internal API checked against moto {PINNED_MOTO_VERSION} only"
        )
    try:
        from moto.awslambda_simple.models import LambdaSimpleBackend
    except ImportError as error:
        raise BridgeHookMoved(f"moto.awslambda_simple.models is gone: {error}") from error
    hook = LambdaSimpleBackend.__dict__.get("invoke")
    if hook is None:
        raise BridgeHookMoved("LambdaSimpleBackend no longer defines invoke()")
    parameters = tuple(inspect.signature(hook).parameters)
    if parameters != HOOK_PARAMETERS:
        raise BridgeHookMoved(
            f"LambdaSimpleBackend.invoke{parameters} does not match the expected {HOOK_PARAMETERS}"
        )
    return LambdaSimpleBackend


def load_local_function(function: LocalFunction) -> Handler:
    """The default loader: import the function's handler file under a module name of its own."""
    return load_handler(function.handler_file, function.handler_name)


def function_name_of(name_or_arn: str) -> str:
    """`arn:aws:lambda:r:a:function:name:qualifier`, `name:alias` or `name` -> `name`."""
    if ":function:" in name_or_arn:
        name_or_arn = name_or_arn.split(":function:", 1)[1]
    return name_or_arn.split(":", 1)[0]


def _lambda_json_default(value: Any) -> Any:
    """Lambda's Python runtime serialises Decimal (what DynamoDB returns) as a float."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error_payload(error_type: str, message: str, stack_trace: list[str]) -> bytes:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "stackTrace": stack_trace}
    ).encode()


@dataclass
class _Registration:
    name: str
    arn: str
    timeout_seconds: float
    memory_mb: int
    environment: Mapping[str, str]
    handler: Handler | None = None
    local_function: LocalFunction | None = None


_active_bridge: LambdaBridge | None = None
_original_invoke: Callable[..., Any] | None = None
_install_lock = threading.Lock()


def _bridged_invoke(
    backend: Any,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    # Same lookup as moto's own invoke: an unknown function is Lambda's ResourceNotFound.
    backend.get_function(function_name, qualifier)
    bridge = _active_bridge
    if bridge is None:
        raise RuntimeError("the Step Functions bridge hook ran while no bridge is installed")
    return bridge.invoke(function_name, body, response_headers)


class LambdaBridge:
    """A registry of in-process handlers that moto's Lambda invocations are routed to."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        function_loader: FunctionLoader = load_local_function,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.function_loader = function_loader
        self._registry: dict[str, _Registration] = {}
        self._load_lock = threading.Lock()

    def register(
        self,
        function_name_or_arn: str,
        handler: Handler,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        memory_mb: int = DEFAULT_MEMORY_MB,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """Route invocations of this function to `handler(event, context)` (replacing any)."""
        name = function_name_of(function_name_or_arn)
        self._registry[name] = _Registration(
            name=name,
            arn=f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
            timeout_seconds=timeout_seconds,
            memory_mb=memory_mb,
            environment=dict(environment or {}),
            handler=handler,
        )

    def register_function(self, function: LocalFunction) -> None:
        """Route a provisioned function to its handler file, imported on first invocation."""
        self._registry[function.name] = _Registration(
            name=function.name,
            arn=function.arn,
            timeout_seconds=function.timeout_seconds,
            memory_mb=function.memory_mb,
            environment=function.environment,
            local_function=function,
        )

    def register_resources(self, resources: LocalResources) -> None:
        for function in resources.functions.values():
            self.register_function(function)

    def _handler_for(self, registration: _Registration) -> Handler:
        if registration.handler is None:
            with self._load_lock:
                if registration.handler is None:
                    assert registration.local_function is not None
                    registration.handler = self.function_loader(registration.local_function)
        return registration.handler

    def invoke(self, function_name_or_arn: str, body: Any, response_headers: Any) -> bytes:
        """Run the registered handler the way Lambda would and return the response payload."""
        name = function_name_of(function_name_or_arn)
        registration = self._registry.get(name)
        if registration is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload(
                "Local.HandlerNotRegistered",
                f"no in-process handler is registered for {name}; "
                f"registered: {', '.join(sorted(self._registry)) or 'none'}",
                [],
            )
        context = LambdaContext(
            function_name=registration.name,
            invoked_function_arn=registration.arn,
            memory_limit_in_mb=registration.memory_mb,
            timeout_seconds=registration.timeout_seconds,
        )
        try:
            event = json.loads(body) if body else {}
            handler = self._handler_for(registration)
            with function_environment(registration.environment):
                result = handler(event, context)
        except Exception as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload(
                type(error).__name__, str(error), traceback.format_tb(error.__traceback__)
            )
        if context.get_remaining_time_in_millis() == 0:
            # The thread cannot be stopped, but the caller sees what Lambda would report.
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload(
                "Sandbox.Timedout",
                f"RequestId: {context.aws_request_id} Error: Task timed out after "
                f"{registration.timeout_seconds:.2f} seconds",
                [],
            )
        try:
            return json.dumps(result, default=_lambda_json_default).encode()
        except (TypeError, ValueError) as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload(
                "Runtime.MarshalError", f"Unable to marshal response: {error}", []
            )

    def install(self) -> None:
        """Patch moto so its Lambda invocations run this bridge's handlers."""
        global _active_bridge, _original_invoke
        with _install_lock:
            if _active_bridge is not None:
                raise RuntimeError("another Step Functions bridge is already installed")
            backend_class = check_hook_point()
            _original_invoke = backend_class.__dict__["invoke"]
            backend_class.invoke = _bridged_invoke
            _active_bridge = self

    def uninstall(self) -> None:
        global _active_bridge, _original_invoke
        from moto.awslambda_simple.models import LambdaSimpleBackend

        with _install_lock:
            if _active_bridge is not self:
                raise RuntimeError("this bridge is not the installed one")
            LambdaSimpleBackend.invoke = _original_invoke
            _active_bridge = None
            _original_invoke = None

    @contextmanager
    def installed(self) -> Iterator[LambdaBridge]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()
