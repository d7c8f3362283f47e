"""A run's executions of one of the stack's state machines, for the tests of chains."""

from __future__ import annotations

from crmjobs.adapters.aws import client as aws_client


def run_executions(stack, machine_logical_id: str, run_id: str) -> list[dict]:
    """The run's executions of the state machine, oldest first, described."""
    sfn = aws_client("stepfunctions")
    machine = stack.resources.state_machines[machine_logical_id]
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    mine = [e for e in listed if e["name"].split("-", 1)[0] == run_id]
    described = [sfn.describe_execution(executionArn=e["executionArn"]) for e in mine]
    return sorted(described, key=lambda e: e["startDate"])
