"""Start a Step Functions execution and wait for its result within an attempt's time."""

from __future__ import annotations

import json
import time
from typing import Any

from crmjobs import config
from crmjobs.adapters.aws import client as aws_client

#: Stop waiting this long before the Lambda's own deadline, so the run records the error.
DEADLINE_MARGIN_SECONDS = 15


class StateMachineFailed(RuntimeError):
    pass


def run_to_completion(
    arn_variable: str, name: str, execution_input: dict[str, Any], time_budget: float
) -> dict[str, Any]:
    """Start (or rejoin, same name and input) an execution and return its output."""
    sfn = aws_client("stepfunctions")
    arn = config.require(arn_variable)
    try:
        execution_arn = sfn.start_execution(
            stateMachineArn=arn, name=name, input=json.dumps(execution_input)
        )["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{name}"
    deadline = time.monotonic() + max(0.0, time_budget - DEADLINE_MARGIN_SECONDS)
    pause = 0.2
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        if status == "SUCCEEDED":
            return json.loads(described.get("output") or "{}")
        if status != "RUNNING":
            raise StateMachineFailed(
                f"execution {name} {status}: {described.get('error')} {described.get('cause')}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"execution {name} still running at the attempt's deadline")
        time.sleep(pause)
        pause = min(pause * 2, 2.0)
