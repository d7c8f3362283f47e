"""The Step Functions adapter against moto: names, idempotent starts, project errors."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from crmjobs.adapters import aws, state_machines
from crmjobs.adapters.state_machines import ExecutionExists
from crmjobs.errors import Conflict

DEFINITION = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}}


@pytest.fixture
def machine(monkeypatch):
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STEPFUNCTIONS"):
        monkeypatch.delenv(variable, raising=False)
    aws.forget_clients()
    # Executions recorded, not run: they stay RUNNING until stopped.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")
        yield boto3.client("stepfunctions").create_state_machine(
            name="crmjobs-bulk-score-leads",
            definition=json.dumps(DEFINITION),
            roleArn=role["Role"]["Arn"],
        )["stateMachineArn"]
    aws.forget_clients()


def test_execution_arn_names_the_machine_and_the_execution():
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:crmjobs-bulk-score-leads"
    assert state_machines.execution_arn(arn, "run_1-2-3") == (
        "arn:aws:states:eu-west-1:123456789012:execution:crmjobs-bulk-score-leads:run_1-2-3"
    )


def test_start_status_and_stop(machine):
    assert state_machines.status(machine, "run_1-1") is None
    state_machines.start(machine, "run_1-1", {"cursor": None})
    assert state_machines.status(machine, "run_1-1") == "RUNNING"
    assert state_machines.stop(machine, "run_1-1", "superseded") is True
    assert state_machines.status(machine, "run_1-1") == "ABORTED"
    assert state_machines.stop(machine, "run_1-1", "superseded") is False
    assert state_machines.stop(machine, "run_1-9", "never started") is False


def test_a_taken_name_is_a_conflict_unless_the_same_start_is_repeated(machine):
    state_machines.start(machine, "run_1-1", {"page": 1})
    state_machines.start(machine, "run_1-1", {"page": 1})  # running, same input: the same one
    with pytest.raises(ExecutionExists) as raised:
        state_machines.start(machine, "run_1-1", {"page": 2})
    assert isinstance(raised.value, Conflict)
    state_machines.stop(machine, "run_1-1", "done")
    with pytest.raises(ExecutionExists):
        state_machines.start(machine, "run_1-1", {"page": 1})  # finished: the name stays taken
