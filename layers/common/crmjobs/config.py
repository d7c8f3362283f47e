"""All environment access in one place.

Values are read when used, never at import time, so tests and the local runtime can point
the code at other resources. `function_environment` overlays one function's own variables
for the current thread (the local runtime runs several functions in one process).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from crmjobs.tasks import get_task

_overlay: ContextVar[Mapping[str, str]] = ContextVar(
    "crmjobs_function_environment", default=MappingProxyType({})
)

DEFAULT_REGION = "us-east-1"


class ConfigurationError(ValueError):
    """A required setting is missing: a deployment problem, never retried as a task error."""


def env(name: str, default: str | None = None) -> str | None:
    value = _overlay.get().get(name)
    if value is None:
        value = os.environ.get(name)
    return default if value in (None, "") else value


def require(name: str) -> str:
    value = env(name)
    if value is None:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


@contextmanager
def function_environment(variables: Mapping[str, str]) -> Iterator[None]:
    token = _overlay.set({**_overlay.get(), **variables})
    try:
        yield
    finally:
        _overlay.reset(token)


def region() -> str:
    return env("AWS_REGION") or env("AWS_DEFAULT_REGION") or DEFAULT_REGION


def queue_url(task: str) -> str:
    """A task's queue is named after it: QUEUE_URL_PREFIX (the stack's queues) + its name."""
    return require("QUEUE_URL_PREFIX") + get_task(task).name


def dead_letter_queue_url(task: str) -> str:
    return queue_url(task) + "-dlq"


def queue_arn(url: str) -> str:
    """ARN of a queue from its URL (`.../<account>/<name>`), for Scheduler targets."""
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region()}:{account}:{name}"


def int_setting(name: str, default: int) -> int:
    raw = env(name)
    try:
        return default if raw is None else int(raw)
    except ValueError:
        raise ConfigurationError(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from None
