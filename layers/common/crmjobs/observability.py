"""Powertools' logger, handler tracing, and the one way run metrics (counts, durations) are
emitted.

Tracing: the template turns on Lambda's active tracing, which records every invocation
(its initialisation, duration and errors) without any SDK in the function, and botocore
passes the trace header on to every AWS request. The X-Ray SDK adds a subsegment per AWS
call, but importing it (through Powertools' Tracer) costs about 200 ms of every cold start
(bench/cold_start.py), so it is loaded only when ``XRAY_SDK_TRACING`` is ``true``: set it
on a function to investigate where its time goes.

Metrics are written per point with `single_metric` (the task as their dimension) rather
than through a shared Metrics object, because the local runtime runs many functions in one
process and a shared object's dimensions would mix.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

import crmjobs
from crmjobs import config

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

XRAY_SDK_TRACING = "XRAY_SDK_TRACING"
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
#: Logs outside any function's invocation (the CLI, a test).
DEFAULT_SERVICE = "crmjobs"

Handler = Callable[[Any, Any], Any]


class FunctionLogger(Logger):
    """Powertools' Logger whose `service` is the invoked function's: each function's own
    POWERTOOLS_SERVICE_NAME (template.yaml), read per invocation from the function's
    environment. In Lambda that is the process environment; the local runtime runs every
    function in one process and gives each its own (config.function_environment), so the
    name is set per invocation, for its thread only, instead of once at import."""

    def inject_lambda_context(self, lambda_handler: Handler | None = None, **options: Any) -> Any:
        """Also marks the end of a cold start: every function's handler is decorated here,
        last (crmjobs.handler_made)."""
        if lambda_handler is None:
            return functools.partial(self.inject_lambda_context, **options)
        crmjobs.handler_made()

        @functools.wraps(lambda_handler)
        def named(event: Any, context: Any) -> Any:
            self.thread_safe_append_keys(service=config.env(SERVICE_NAME, DEFAULT_SERVICE))
            try:
                return lambda_handler(event, context)
            finally:
                self.thread_safe_remove_keys(["service"])

        return super().inject_lambda_context(named, **options)


logger = FunctionLogger(service=config.env(SERVICE_NAME, DEFAULT_SERVICE))


class HandlerTracing:
    """``capture_lambda_handler`` as Powertools' Tracer offers it, applied only when
    XRAY_SDK_TRACING is true (read when the handler is decorated, at cold start)."""

    def capture_lambda_handler(
        self,
        lambda_handler: Handler | None = None,
        *,
        capture_response: bool = True,
        capture_error: bool = True,
    ) -> Any:
        if lambda_handler is None:
            return functools.partial(
                self.capture_lambda_handler,
                capture_response=capture_response,
                capture_error=capture_error,
            )
        if not xray_sdk_tracing():
            return lambda_handler
        return _powertools_tracer().capture_lambda_handler(
            lambda_handler, capture_response=capture_response, capture_error=capture_error
        )


tracer = HandlerTracing()


def xray_sdk_tracing() -> bool:
    return (config.env(XRAY_SDK_TRACING) or "false").strip().lower() == "true"


@functools.cache
def _powertools_tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer()


def emit_metric(
    name: str, task: str, value: float = 1, unit: MetricUnit = MetricUnit.Count
) -> None:
    """Emit one metric point (CloudWatch EMF) with the task as its dimension, unless
    POWERTOOLS_METRICS_DISABLED (which `single_metric` alone does not honour)."""
    if is_metrics_disabled():
        return
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CrmJobs"),
    ) as metric:
        metric.add_dimension(name="task", value=task)
