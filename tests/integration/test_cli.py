"""The `crmjobs` command line against the local runtime served from this process (moto server
mode, its endpoint.json written as `crmjobs dev` writes it), against `crmjobs dev` run as
a separate process, and against a "deployed" stack that moto's CloudFormation holds."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from crmjobs import client, runtime
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url
from crmjobs.errors import NotFound
from crmjobs.models import KnowledgeItem, Prospect, Workspace
from crmjobs.tasks import TASKS
from crmjobs_local import cli
from crmjobs_local.cli.targets import deployed_environment, write_endpoint_file
from crmjobs_local.project import ENDPOINT_FILE
from crmjobs_local.stack import free_port, reset_cached_clients

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "crmjobs_local.cli"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The local runtime in server mode, serving, with the endpoint.json `crmjobs dev` writes."""
    from crmjobs_local.stack import LocalRuntime

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server's request log
    data_dir = tmp_path_factory.mktemp("dev")
    local = LocalRuntime(ROOT / "template.yaml", data_dir=data_dir)
    local.start()
    try:
        reset_cached_clients()  # models may hold connections made for an earlier module's moto
        write_endpoint_file(local)
        local.serve()
        yield local
    finally:
        local.stop()
        reset_cached_clients()


@pytest.fixture
def workspace(served):
    ws = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Acme", subscription_tier="starter")
    ws.save()
    Prospect(
        workspace_id=ws.id, id="p-1", name="Ada Lovelace", email="ada@acme.com", stage="qualified"
    ).save()
    return ws


@pytest.fixture
def run_cli(served, capsys):
    """Run a command in this process against the served stack: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([*args, "--data-dir", str(served.data_dir)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _run_id(output: str) -> str:
    return output.split()[0]


def test_trigger_wait_then_list_and_show(run_cli, workspace):
    payload = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
    code, out, _ = run_cli(
        "trigger", "score-lead", "--payload", payload, "--tag", "cli", "--wait", "--timeout", "60"
    )
    assert code == 0, out
    run_id = _run_id(out)
    assert run_id.startswith("run_") and '"status": "COMPLETED"' in out

    code, out, _ = run_cli("runs", "list", "--workspace", workspace.id, "--tag", "cli")
    assert code == 0 and run_id in out and "COMPLETED" in out and "1/3" in out

    code, out, _ = run_cli("runs", "show", run_id)
    shown = json.loads(out)
    assert shown["status"] == "COMPLETED" and shown["tags"] == ["cli"]
    assert shown["output"]["score"] == 10 + 15 + 10 + 15

    code, out, _ = run_cli("runs", "replay", run_id)
    assert code == 0 and f"(replay of {run_id})" in out
    assert client.wait(_run_id(out), timeout=60).status == "COMPLETED"


def test_payload_from_file_and_idempotency_key(run_cli, workspace, tmp_path):
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"}))
    arguments = ("trigger", "score-lead", "--payload", f"@{payload_file}")
    code, first, _ = run_cli(*arguments, "--idempotency-key", "import-7")
    code_again, again, _ = run_cli(*arguments, "--idempotency-key", "import-7")
    assert code == code_again == 0
    assert _run_id(again) == _run_id(first)
    assert "an earlier run with this idempotency key" in again


def test_invalid_payload_is_rejected_and_nothing_recorded(run_cli, workspace):
    payload = json.dumps({"workspaceId": workspace.id, "extra": 1})
    code, _, err = run_cli("trigger", "score-lead", "--payload", payload)
    assert code == 2
    assert "prospectId" in err and "extra" in err
    assert client.list_runs(workspace.id) == []


def test_delayed_run_is_canceled_once(run_cli, workspace):
    payload = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
    code, out, _ = run_cli("trigger", "score-lead", "--payload", payload, "--delay", "600")
    assert code == 0 and "DELAYED" in out
    run_id = _run_id(out)
    code, out, _ = run_cli("runs", "cancel", run_id)
    assert code == 0 and "CANCELED" in out
    code, _, err = run_cli("runs", "cancel", run_id)
    assert code == 2 and "only QUEUED or DELAYED" in err
    code, out, _ = run_cli("runs", "list", "--workspace", workspace.id, "--status", "CANCELED")
    assert run_id in out


def test_one_shot_commands_need_a_dev_server(tmp_path, capsys):
    code = cli.main(["runs", "list", "--workspace", "w", "--data-dir", str(tmp_path)])
    assert code == 2
    assert "start `crmjobs dev` first or pass --stack" in capsys.readouterr().err
    (tmp_path / ENDPOINT_FILE).write_text(
        json.dumps({"endpoint": "http://127.0.0.1:9", "environment": {}})
    )
    code = cli.main(["runs", "show", "run_x", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is stale" in err and "start `crmjobs dev` first" in err


def test_schema_prints_a_valid_json_schema_per_task(capsys):
    from jsonschema import Draft202012Validator

    for task in TASKS:
        assert cli.main(["schema", task]) == 0
        schema = json.loads(capsys.readouterr().out)
        Draft202012Validator.check_schema(schema)
        assert schema["title"] == f"{task} payload"
    validator = Draft202012Validator(json.loads(_schema_of("score-lead", capsys)))
    assert validator.is_valid({"workspaceId": "w1", "prospectId": "p1"})
    assert not validator.is_valid({"workspaceId": "w1"})


def _schema_of(task: str, capsys) -> str:
    cli.main(["schema", task])
    return capsys.readouterr().out


def _score_lead_event() -> tuple[dict, dict]:
    """The sample SQS event of score_lead (events/), and the payload it carries."""
    event = json.loads((ROOT / "events" / "score_lead_plain.json").read_text())
    return event, json.loads(event["Records"][0]["body"])


def _answer_and_report(out: str) -> tuple[Any, str]:
    """`crmjobs invoke` prints the handler's answer (JSON), then the runs the event made."""
    answer, end = json.JSONDecoder().raw_decode(out)
    return answer, out[end:]


def test_invoke_runs_the_handler_against_the_dev_server(run_cli, served, tmp_path):
    event, payload = _score_lead_event()
    Workspace(id=payload["workspaceId"], name="Demo", subscription_tier="starter").save()
    Prospect(workspace_id=payload["workspaceId"], id=payload["prospectId"], name="Ada").save()
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    code, out, _ = run_cli("invoke", "score_lead", "--event", str(event_file))
    assert code == 0
    answer, report = _answer_and_report(out)
    assert answer == {"batchItemFailures": []}
    [run] = client.list_runs(payload["workspaceId"], task="score-lead")
    assert run.status == "COMPLETED" and run.source == "sqs" and run.payload == payload
    assert Prospect.get(payload["workspaceId"], payload["prospectId"]).score == 10
    assert f"score-lead {payload['workspaceId']} {run.id} COMPLETED attempt 1/3" in report
    assert '"score": 10' in report  # the run's output


def test_invoke_of_an_event_whose_run_fails_says_why_and_exits_1(run_cli, served, tmp_path):
    event, _ = _score_lead_event()
    record = event["Records"][0]
    record["messageId"] = str(uuid.uuid4())
    record["body"] = json.dumps({"workspaceId": "ws-missing", "prospectId": "p-1"})
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    code, out, _ = run_cli("invoke", "score_lead", "--event", str(event_file))
    assert code == 1
    answer, report = _answer_and_report(out)
    assert answer == {"batchItemFailures": []}  # acknowledged: bad input is never retried
    assert "FAILED" in report and "NotFound: workspace ws-missing not found" in report


def test_wait_that_times_out_has_its_own_exit_code(run_cli, workspace):
    payload = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
    code, out, err = run_cli(
        "trigger", "score-lead", "--payload", payload, "--delay", "60", "--wait", "--timeout", "1"
    )
    assert code == 3
    assert '"status": "DELAYED"' in out
    assert "timed out" in err and "still DELAYED" in err


@pytest.mark.slow
def test_invoke_without_a_dev_server_uses_a_fresh_runtime(tmp_path):
    """Run from a subfolder of the project: the template is found upward from there."""
    result = subprocess.run(
        [*CLI, "invoke", "ScoreLeadFunction", "--event", "score_lead_plain.json"],
        cwd=ROOT / "events",
        env={**os.environ, "CRMJOBS_DATA_DIR": str(tmp_path)},  # no dev server there
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    # The fresh runtime has the demo data the sample events name.
    answer, report = _answer_and_report(result.stdout)
    assert answer == {"batchItemFailures": []}
    assert "score-lead ws-demo" in report and "COMPLETED attempt 1/3" in report


def test_fire_a_schedule_of_the_dev_server(run_cli, workspace):
    code, out, _ = run_cli("fire", "ScheduledLeadScoringSchedule")
    assert code == 0
    run_id = out.split("its run: ")[1].split()[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:  # a delivered schedule is a plain message: its run is recorded when received
            done = client.wait(run_id, timeout=deadline - time.monotonic())
            break
        except NotFound:
            time.sleep(0.3)
    assert done.status == "COMPLETED" and done.source == "sqs"
    assert done.output["workspaces"] >= 1
    code, _, err = run_cli("fire", "no-such-schedule")
    assert code == 2 and "ScheduledLeadScoringSchedule" in err


def test_search_finds_an_indexed_document(run_cli, workspace):
    KnowledgeItem(
        workspace_id=workspace.id,
        id="doc-pricing",
        title="Pricing and plans",
        content="The R5 robot costs $1,450 per month on a 36-month plan. "
        "Installation is a one-time fee of $4,900.",
    ).save()
    payload = json.dumps({"workspaceId": workspace.id, "itemId": "doc-pricing"})
    code, out, _ = run_cli("trigger", "index-document", "--payload", payload, "--wait")
    assert code == 0, out
    code, out, _ = run_cli("search", workspace.id, "monthly price of the robot", "-k", "3")
    assert code == 0
    assert "Pricing and plans" in out and "doc-pricing" in out


def test_dlq_list_and_redrive_replays_dead_lettered_runs(run_cli, served, workspace, monkeypatch):
    def unreachable(prospect, now):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr("crmjobs.services.scoring.score_and_store", unreachable)
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 1)
    run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
    assert client.wait(run.id, timeout=60).status == "FAILED"
    monkeypatch.undo()
    # What SQS itself moves to a DLQ after maxReceiveCount: the body, no attributes.
    plain_body = json.dumps({"workspaceId": workspace.id, "prospectId": "p-1"})
    aws_client("sqs").send_message(
        QueueUrl=dead_letter_queue_url("score-lead"), MessageBody=plain_body
    )

    code, out, _ = run_cli("dlq", "list", "score-lead")
    assert code == 0
    assert run.id in out and "database unreachable" in out and "(plain message)" in out
    code, everything, _ = run_cli("dlq", "list")
    assert run.id in everything

    code, out, _ = run_cli("dlq", "redrive", "score-lead")
    assert code == 0 and "redrove 2 message(s)" in out
    replay_id = out.split(f"{run.id} -> replayed as ")[1].split()[0]
    replayed = client.wait(replay_id, timeout=60)
    assert replayed.status == "COMPLETED" and replayed.replayOf == run.id
    assert client.retrieve(run.id).status == "FAILED"  # the original stays as it was
    deadline = time.monotonic() + 60
    plain_runs = []
    while time.monotonic() < deadline and not plain_runs:
        plain_runs = [
            r
            for r in client.list_runs(workspace.id, status="COMPLETED")
            if r.source == "sqs" and r.payload == json.loads(plain_body)
        ]
        time.sleep(0.3)
    assert plain_runs, "the re-sent plain message was not run"
    code, out, _ = run_cli("dlq", "list", "score-lead")
    assert "0 message(s)" in out


# --------------------------------------------------------------------------- --stack

_DEPLOYED_TEMPLATE = {
    "Parameters": {"Stage": {"Type": "String"}},
    "Resources": {
        "ScoreLeadQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-score-lead"}},
        },
        "ScoreLeadDeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-score-lead-dlq"}},
        },
        "RunsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
        "SchedulerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "scheduler.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        },
    },
}


def test_stack_option_resolves_the_functions_environment_from_cloudformation(served, capsys):
    name = f"deployed-{uuid.uuid4().hex[:6]}"
    cloudformation = aws_client("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(_DEPLOYED_TEMPLATE),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": "prod"}],
    )
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    }
    session = boto3.session.Session(region_name="us-east-1")
    environment, unresolved = deployed_environment(session, name, ROOT / "template.yaml")
    prefix = environment["QUEUE_URL_PREFIX"]
    assert prefix + "score-lead" == physical["ScoreLeadQueue"]
    assert prefix + "score-lead-dlq" == physical["ScoreLeadDeadLetterQueue"]
    assert environment["RUNS_TABLE"] == physical["RunsTable"]
    role = aws_client("iam").get_role(RoleName=physical["SchedulerRole"])["Role"]
    assert environment["SCHEDULER_ROLE_ARN"] == role["Arn"]
    assert environment["STAGE"] == "prod"
    assert environment["EMBEDDINGS_BACKEND"] == "bedrock"
    assert {"WORKSPACES_TABLE", "OPENSEARCH_ENDPOINT"} <= set(
        unresolved
    )

    aws_client("sqs").send_message(
        QueueUrl=physical["ScoreLeadDeadLetterQueue"],
        MessageBody="{}",
        MessageAttributes={
            "runId": {"DataType": "String", "StringValue": "run_deployed"},
            "error": {"DataType": "String", "StringValue": "TimeoutError: too slow"},
        },
    )
    code = cli.main(["dlq", "list", "--stack", name, "--region", "us-east-1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "run_deployed" in out and "TimeoutError: too slow" in out and "1 message(s)" in out


# --------------------------------------------------------------------------- crmjobs dev


@pytest.mark.slow
def test_dev_serves_until_interrupted_and_one_shot_commands_reach_it(tmp_path):
    data_dir = tmp_path / "dev"
    log = (tmp_path / "dev.log").open("w")
    ports = ["--api-port", str(free_port()), "--dashboard-port", str(free_port())]
    dev = subprocess.Popen(
        [*CLI, "dev", "--data-dir", str(data_dir), *ports], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint_file = data_dir / ENDPOINT_FILE
    try:
        deadline = time.monotonic() + 120
        while not endpoint_file.exists() and time.monotonic() < deadline:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            time.sleep(0.3)
        document = json.loads(endpoint_file.read_text())
        assert document["pid"] == dev.pid
        assert document["environment"]["QUEUE_URL_PREFIX"].startswith(document["endpoint"])

        payload = json.dumps({"workspaceId": "ws-none", "prospectId": "p-404"})
        triggered = subprocess.run(
            [*CLI, "trigger", "score-lead", "--payload", payload, "--wait"]
            + ["--timeout", "60", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert triggered.returncode == 1, triggered.stderr  # FAILED: no such workspace
        assert '"message": "workspace ws-none not found"' in triggered.stdout
    finally:
        dev.send_signal(signal.SIGINT)
        exit_code = dev.wait(timeout=90)
        log.close()
    output = (tmp_path / "dev.log").read_text()
    assert exit_code == 0, output
    assert f"serving at {document['endpoint']}" in output
    assert "OpenSearchDomain (AWS::OpenSearchService::Domain)" in output  # not emulated
    assert "seeded ws-demo (300 prospects)" in output
    run_line = next(line for line in output.splitlines() if " score-lead ws-none " in line)
    assert "FAILED before any attempt" in run_line and "workspace ws-none not found" in run_line
    assert not endpoint_file.exists()
