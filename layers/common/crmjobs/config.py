"""All environment access in one place.

Values are read when used, never at import time, so tests and the local runtime can point
the code at other resources. `function_environment` overlays one function's own variables
for the current thread (the local runtime runs several functions in one process).
`check_environment` validates a function's settings (the `Settings` model) once per
environment, when the function first runs: a bad deployment fails with the variable's
name instead of somewhere in the middle of a task.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    StringConstraints,
    ValidationError,
    model_validator,
)

from crmjobs.errors import PermanentError
from crmjobs.tasks import get_task

_overlay: ContextVar[Mapping[str, str]] = ContextVar(
    "crmjobs_function_environment", default=MappingProxyType({})
)

DEFAULT_REGION = "us-east-1"


class ConfigurationError(PermanentError, ValueError):
    """A setting is missing or malformed: a deployment problem. The run fails permanently
    with the message (it names the variable); it is never retried as a task error."""


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


# --- the settings a function starts with -------------------------------------------------

_Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")]
_TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,255}$")]
_StateMachineArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:\S+$")
]
_RoleArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")]


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


class Settings(BaseModel):
    """The stack's settings, as the template sets them (Globals and a function's own
    variables). Families are found by name: every `*_TABLE` is a table name, every
    `STATE_MACHINE_ARN_*` a state machine ARN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: dict[str, _TableName] = {}
    state_machines: dict[str, _StateMachineArn] = {}
    queue_url_prefix: _Url | None = Field(None, alias="QUEUE_URL_PREFIX")
    scheduler_role_arn: _RoleArn | None = Field(None, alias="SCHEDULER_ROLE_ARN")
    schedule_group_name: (
        Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_.-]{1,64}$")] | None
    ) = Field(None, alias="SCHEDULE_GROUP_NAME")
    run_retention_days: PositiveInt | None = Field(None, alias="RUN_RETENTION_DAYS")
    idempotency_ttl_seconds: PositiveInt | None = Field(None, alias="IDEMPOTENCY_TTL_SECONDS")
    auth_mode: Literal["iam", "jwt"] | None = Field(None, alias="AUTH_MODE")
    scoring_timezone: Annotated[str, AfterValidator(_time_zone)] | None = Field(
        None, alias="SCORING_TIMEZONE"
    )
    embeddings_backend: Literal["bedrock", "local"] | None = Field(None, alias="EMBEDDINGS_BACKEND")
    embeddings_dimension: PositiveInt | None = Field(None, alias="EMBEDDINGS_DIMENSION")
    vector_backend: Literal["opensearch", "local"] | None = Field(None, alias="VECTOR_BACKEND")
    opensearch_endpoint: _Url | None = Field(None, alias="OPENSEARCH_ENDPOINT")
    opensearch_service: Literal["es", "aoss"] | None = Field(None, alias="OPENSEARCH_SERVICE")
    local_data_dir: str | None = Field(None, alias="LOCAL_DATA_DIR")

    @model_validator(mode="after")
    def _backend_has_its_settings(self) -> Settings:
        if self.vector_backend == "opensearch" and self.opensearch_endpoint is None:
            raise ValueError("OPENSEARCH_ENDPOINT is not set (VECTOR_BACKEND is opensearch)")
        if self.vector_backend == "local" and self.local_data_dir is None:
            raise ValueError("LOCAL_DATA_DIR is not set (VECTOR_BACKEND is local)")
        return self


_NAMED = tuple(field.alias for field in Settings.model_fields.values() if field.alias)
#: What the task runtime itself cannot run without (every SQS-fed task function).
RUNTIME_VARIABLES = (
    "RUNS_TABLE",
    "IDEMPOTENCY_TABLE",
    "CONCURRENCY_TABLE",
    "WORKSPACES_TABLE",
    "QUEUE_URL_PREFIX",
)

#: Environments seen (a Lambda container has one; a local runtime one per function).
_MAX_CHECKED_ENVIRONMENTS = 64
_checked: dict[tuple, Settings | ConfigurationError] = {}
_checked_lock = threading.Lock()


def _settings_variables() -> dict[str, str]:
    """The variables of the current environment (the overlay over the process's) that
    Settings reads, empty values dropped. Only those: Lambda changes others (the trace id)
    on every invocation."""
    merged = {**os.environ, **_overlay.get()}
    return {
        name: value
        for name, value in merged.items()
        if value != ""
        and (name in _NAMED or name.endswith("_TABLE") or name.startswith("STATE_MACHINE_ARN_"))
    }


def _problem(error: dict) -> str:
    names = [part for part in error["loc"] if isinstance(part, str) and part.isupper()]
    if not names:  # a rule across settings names its variables in the message
        return error["msg"].removeprefix("Value error, ")
    shown = error["input"] if isinstance(error["input"], str) else None
    got = f" (got {shown!r})" if shown is not None else ""
    return f"environment variable {names[-1]}: {error['msg']}{got}"


def _validated(variables: dict[str, str], required: tuple[str, ...]) -> Settings:
    missing = [name for name in required if name not in variables]
    if missing:
        raise ConfigurationError(
            "; ".join(f"environment variable {name} is not set" for name in missing)
        )
    fields = {name: variables[name] for name in _NAMED if name in variables}
    try:
        return Settings.model_validate(
            {
                **fields,
                "tables": {n: v for n, v in variables.items() if n.endswith("_TABLE")},
                "state_machines": {
                    n: v for n, v in variables.items() if n.startswith("STATE_MACHINE_ARN_")
                },
            }
        )
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigurationError(f"bad deployment settings: {problems}") from None


def check_environment(required: tuple[str, ...] = ()) -> Settings:
    """The current environment's settings, validated once per distinct environment (in
    Lambda: once per container); ConfigurationError naming every missing or bad variable."""
    variables = _settings_variables()
    key = (required, tuple(sorted(variables.items())))
    with _checked_lock:
        outcome = _checked.get(key)
    if outcome is None:
        try:
            outcome = _validated(variables, required)
        except ConfigurationError as exc:
            outcome = exc
        with _checked_lock:
            if len(_checked) >= _MAX_CHECKED_ENVIRONMENTS:
                _checked.clear()
            _checked[key] = outcome
    if isinstance(outcome, ConfigurationError):
        raise ConfigurationError(str(outcome))
    return outcome
