"""Step Functions executions: start, look up and stop them by name.

Callers name executions (a bulk run's chain is named by run, attempt and segment), so
this module takes a state machine ARN and an execution name, and raises the project's
errors instead of Step Functions' error codes.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from crmjobs.adapters.aws import client as aws_client
from crmjobs.domain.execution_chains import ChainedExecution
from crmjobs.errors import Conflict

RUNNING = "RUNNING"


class ExecutionExists(Conflict):
    """An execution of that name was already started (it may be running or finished);
    Step Functions keeps names unique per state machine for 90 days."""


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:<machine> -> arn:...:execution:<machine>:<name>."""
    prefix, machine = state_machine_arn.split(":stateMachine:", 1)
    return f"{prefix}:execution:{machine}:{name}"


def _sfn() -> Any:
    return aws_client("stepfunctions")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def start(state_machine_arn: str, name: str, execution_input: dict[str, Any]) -> None:
    """Start an execution. ExecutionExists when one of that name was started before with
    another input or has finished (the same input while it runs is not an error)."""
    try:
        _sfn().start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input)
        )
    except ClientError as exc:
        if _code(exc) == "ExecutionAlreadyExists":
            raise ExecutionExists(f"execution {name} already exists") from None
        raise


def status(state_machine_arn: str, name: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None when there is no such
    execution."""
    try:
        described = _sfn().describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as exc:
        if _code(exc) == "ExecutionDoesNotExist":
            return None
        raise
    return described["status"]


def stop(state_machine_arn: str, name: str, cause: str) -> bool:
    """Stop the execution if it is running; True when it was."""
    if status(state_machine_arn, name) != RUNNING:
        return False
    try:
        _sfn().stop_execution(
            executionArn=execution_arn(state_machine_arn, name), cause=cause[:32768]
        )
    except ClientError as exc:
        if _code(exc) == "ExecutionDoesNotExist":
            return False
        raise
    return True


def stop_chain(state_machine_arn: str, first: str, cause: str) -> list[str]:
    """Stop whatever runs of a chain of executions (a bulk run's attempt, whose first
    execution is named `first`): they are looked up by name until one was never started.
    The names of those that were running."""
    stopped = []
    execution = ChainedExecution.parse(first)
    while status(state_machine_arn, execution.name) is not None:
        if stop(state_machine_arn, execution.name, cause):
            stopped.append(execution.name)
        execution = execution.successor()
    return stopped
