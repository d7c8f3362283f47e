"""A bulk run longer than one execution: the chain of executions under moto (pages of 5
prospects, 2 pages per execution), its exact totals, a retry that starts over, and that
only the run's current chain finishes it."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from state_machine_runs import run_executions

from crmjobs import client, config, ledger
from crmjobs.adapters.aws import client as aws_client
from crmjobs.models import Prospect, Workspace
from crmjobs.runtime import RunContext
from crmjobs.services import scoring
from crmjobs.services.fanout import start_fanout

PAGES_PER_EXECUTION = 2
PAGE = 5
PROSPECTS = 23  # pages of 5, 5, 5, 5, 3: three executions of 2, 2 and 1 pages
ARN_VARIABLE = "STATE_MACHINE_ARN_BULK_SCORE_LEADS"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """The application with 2 pages per bulk execution (template parameters)."""
    from crmjobs_local.stack import LocalRuntime

    parameters = {
        "ScoringPagesPerExecution": str(PAGES_PER_EXECUTION),
        "IndexingPagesPerExecution": str(PAGES_PER_EXECUTION),
    }
    with LocalRuntime(
        Path(__file__).resolve().parents[2] / "template.yaml",
        data_dir=tmp_path_factory.mktemp("data"),
        in_process=True,
        parameters=parameters,
    ) as local:
        yield local


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr(scoring, "PAGE_SIZE", PAGE)


def _seed(workspace_id: str, count: int) -> None:
    with Prospect.batch_write() as batch:
        for n in range(count):
            batch.save(Prospect(workspace_id=workspace_id, id=f"p-{n:03d}", name=f"P{n}"))


def _executions(stack, run_id: str) -> list[dict]:
    return run_executions(stack, "BulkScoreLeadsStateMachine", run_id)


def _wait_for_executions(
    stack, run_id: str, count: int, *, ended: bool = False, timeout: float = 60
) -> list[dict]:
    """At least `count` executions of the run, all but the last ended (all if `ended`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _executions(stack, run_id)
        waiting = found if ended else found[:-1]
        if len(found) >= count and all(e["status"] != "RUNNING" for e in waiting):
            return found
        time.sleep(0.1)
    raise AssertionError(f"{run_id}: not {count} executions as expected within {timeout} s")


def test_a_run_spans_three_executions_with_exact_totals(stack, workspace):
    _seed(workspace.id, PROSPECTS)
    other = Workspace(id=f"{workspace.id}-other", name="Other")
    other.save()
    _seed(other.id, 3)
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-score-leads").poll_once()
    done = client.wait(run.id, timeout=120)
    assert done.status == "COMPLETED", done.error
    assert done.output == {
        "processed": PROSPECTS,
        "changed": PROSPECTS,
        "unchanged": 0,
        "failed": 0,
        "pages": 5,
        "listed": PROSPECTS,
    }
    executions = _executions(stack, run.id)
    assert [e["name"] for e in executions] == [f"{run.id}-1", f"{run.id}-1-2", f"{run.id}-1-3"]
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    # The first two handed over (cursor and totals) without finishing the run.
    for handed_over in executions[:2]:
        assert json.loads(handed_over["output"])["result"] == {"outcome": {"continued": True}}
    second_input = json.loads(executions[1]["input"])
    assert (second_input["pages"], second_input["listed"]) == (2, 10)
    assert second_input["totals"] == {"processed": 10, "changed": 10, "unchanged": 0, "failed": 0}
    assert ledger.get(run.id).execution == f"{run.id}-1"  # the chain the run records
    assert all(p.score is not None for p in Prospect.query(workspace.id))
    assert all(p.score is None for p in Prospect.query(other.id))


def test_a_retried_run_starts_over_in_a_new_chain(stack, workspace, monkeypatch):
    _seed(workspace.id, PROSPECTS)
    in_second_execution = {f"p-{n:03d}" for n in range(10, 15)}  # page 3
    failing = threading.Event()
    failing.set()
    batch_get = Prospect.batch_get

    def unavailable_for_page_3(keys, *args, **kwargs):
        keys = list(keys)
        if failing.is_set() and {key[1] for key in keys} & in_second_execution:
            raise ConnectionError("DynamoDB unavailable")
        return batch_get(keys, *args, **kwargs)

    monkeypatch.setattr(Prospect, "batch_get", unavailable_for_page_3)
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    source = stack.source_for_task("bulk-score-leads")
    source.poll_once()
    deadline = time.monotonic() + 60
    while ledger.get(run.id).status == "EXECUTING" and time.monotonic() < deadline:
        time.sleep(0.2)
    failed = client.retrieve(run.id)
    assert (failed.status, failed.attempts) == ("QUEUED", 1)
    assert "DynamoDB unavailable" in failed.error["message"]
    _wait_for_executions(stack, run.id, 2, ended=True)

    failing.clear()
    deadline = time.monotonic() + 60
    while client.retrieve(run.id).status != "COMPLETED" and time.monotonic() < deadline:
        source.poll_once()  # the retry's message, after its backoff
    done = client.retrieve(run.id)
    assert (done.status, done.attempts) == ("COMPLETED", 2), done.error
    # From the first page again, with zero totals: the 10 prospects the first attempt
    # scored are listed, not due, and not counted twice.
    assert done.output == {
        "processed": 13,
        "changed": 13,
        "unchanged": 0,
        "failed": 0,
        "pages": 5,
        "listed": PROSPECTS,
    }
    names = {e["name"]: e["status"] for e in _executions(stack, run.id)}
    assert names == {
        f"{run.id}-1": "SUCCEEDED",
        f"{run.id}-1-2": "FAILED",
        f"{run.id}-2": "SUCCEEDED",
        f"{run.id}-2-2": "SUCCEEDED",
        f"{run.id}-2-3": "SUCCEEDED",
    }


def _report_execution_ended(stack, execution: str, status: str = "ABORTED") -> None:
    """What the EventBridge rule delivers when an execution ends without its finish step."""
    machine = stack.resources.state_machines["BulkScoreLeadsStateMachine"]
    event = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "name": execution,
            "status": status,
            "stateMachineArn": machine,
            "executionArn": machine.replace(":stateMachine:", ":execution:") + f":{execution}",
            "cause": "stopped by hand",
        },
    }
    response = aws_client("lambda").invoke(
        FunctionName=stack.resources.functions["FinishBulkRunFunction"].name,
        Payload=json.dumps(event),
    )
    assert "FunctionError" not in response, response["Payload"].read()


def test_only_the_current_chain_finishes_the_run(stack, workspace, monkeypatch):
    _seed(workspace.id, PROSPECTS)
    release = threading.Event()
    batch_get = Prospect.batch_get

    def held_in_second_execution(keys, *args, **kwargs):
        keys = list(keys)
        if "p-010" in {key[1] for key in keys}:
            assert release.wait(60)
        return batch_get(keys, *args, **kwargs)

    monkeypatch.setattr(Prospect, "batch_get", held_in_second_execution)
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-score-leads").poll_once()
    try:
        first, second = _wait_for_executions(stack, run.id, 2)
        assert (first["status"], second["status"]) == ("SUCCEEDED", "RUNNING")
        # A late failure report of the execution that handed over, and one of a chain
        # that is not the run's (no attempt 2 started), change nothing.
        _report_execution_ended(stack, f"{run.id}-1")
        _report_execution_ended(stack, f"{run.id}-2", status="FAILED")
        running = ledger.get(run.id)
        assert (running.status, running.attempts, running.error) == ("EXECUTING", 1, None)
    finally:
        release.set()
    done = client.wait(run.id, timeout=120)
    assert done.status == "COMPLETED", done.error
    assert (done.output["processed"], done.output["pages"]) == (PROSPECTS, 5)


def test_a_retry_stops_what_still_runs_of_the_previous_attempt(stack, workspace, monkeypatch):
    """An attempt whose detach was never recorded is retried while its chain still runs
    (the runtime took it for lost): the next attempt stops that chain first."""
    _seed(workspace.id, PROSPECTS)
    held, release = threading.Event(), threading.Event()
    batch_get = Prospect.batch_get

    def held_in_second_execution(keys, *args, **kwargs):
        keys = list(keys)
        if "p-010" in {key[1] for key in keys} and not release.is_set():
            held.set()
            assert release.wait(60)
        return batch_get(keys, *args, **kwargs)

    monkeypatch.setattr(Prospect, "batch_get", held_in_second_execution)
    run_id = ledger.new_run_id()
    bulk = stack.resources.functions["BulkScoreLeadsFunction"]
    now = datetime.now(UTC)
    try:
        with config.function_environment(bulk.environment):
            start_fanout(ARN_VARIABLE, _context(run_id, workspace.id, attempt=1), workspace.id, now)
            # The retry comes while the second execution runs a batch (its Map iteration
            # is what is stopped), however long that execution took to get there.
            assert held.wait(60), "the second execution never reached its first batch"
            start_fanout(ARN_VARIABLE, _context(run_id, workspace.id, attempt=2), workspace.id, now)
    finally:
        release.set()
    executions = {e["name"]: e for e in _wait_for_executions(stack, run_id, 5, ended=True)}
    # The stopped execution went no further (no <run>-1-3). AWS reports it ABORTED; moto
    # ends a stopped Map inside a Parallel as FAILED once its running task returns.
    assert set(executions) == {f"{run_id}-{n}" for n in ("1", "1-2", "2", "2-2", "2-3")}
    assert executions[f"{run_id}-1-2"]["status"] in ("ABORTED", "FAILED")
    history = aws_client("stepfunctions").get_execution_history(
        executionArn=executions[f"{run_id}-1-2"]["executionArn"]
    )["events"]
    assert "MapIterationAborted" in {event["type"] for event in history}
    assert {executions[f"{run_id}-2-{n}"]["status"] for n in (2, 3)} == {"SUCCEEDED"}
    assert executions[f"{run_id}-2"]["status"] == "SUCCEEDED"


def _context(run_id: str, workspace_id: str, attempt: int) -> RunContext:
    return RunContext(run_id, "bulk-score-leads", workspace_id, attempt, max_attempts=2)
