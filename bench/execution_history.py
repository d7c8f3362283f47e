"""History events of a bulk run's executions: what a page costs, what a retried task adds,
and so how many pages an execution can list below Step Functions' 25,000 events (the
ScoringPagesPerExecution and IndexingPagesPerExecution defaults of template.yaml).

Bulk runs on the embedded local runtime with small pages of the production shape (10
batches a page as bulk scoring has, 40 as bulk indexing has), 2 pages per execution;
moto's history records the same events as Step Functions for these states.

Run: python bench/execution_history.py
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

from crmjobs import client
from crmjobs.adapters.aws import client as aws_client
from crmjobs.models import Prospect, Workspace
from crmjobs.services import scoring
from crmjobs.services.fanout import PAGE_SIZE
from crmjobs_local.stack import LocalRuntime
from crmjobs_local.template import load_template

HISTORY_LIMIT = 25_000
#: Each task's Retry: MaxAttempts 3 (statemachines/paged_fanout.asl.json).
MAX_RETRIES = 3
BATCH = 2  # prospects per batch: the count of batches is what the history depends on
PRODUCTION = {
    "scoring": (10, "ScoringPagesPerExecution"),
    "indexing": (40, "IndexingPagesPerExecution"),
}
TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def _history(stack: LocalRuntime, run_id: str) -> list[list[dict]]:
    sfn = aws_client("stepfunctions")
    machine = stack.resources.state_machines["BulkScoreLeadsStateMachine"]
    executions = [
        e
        for e in sfn.list_executions(stateMachineArn=machine)["executions"]
        if e["name"].split("-", 1)[0] == run_id
    ]
    executions.sort(key=lambda e: e["startDate"])
    histories = []
    for execution in executions:
        events, token = [], None
        while True:
            kwargs = {"nextToken": token} if token else {}
            page = sfn.get_execution_history(executionArn=execution["executionArn"], **kwargs)
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        histories.append(events)
    return histories


def _page_costs(events: list[dict]) -> list[int]:
    """Events from one ListPage task to the next (a page: list, choice, its Map)."""
    starts = [
        i
        for i, e in enumerate(events)
        if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == "ListPage"
    ]
    return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def _bulk_run(stack: LocalRuntime, workspace_id: str, batches: int) -> list[list[dict]]:
    """A run over 3 pages and 1 prospect (2 executions of 2 pages, the last one partial)."""
    scoring.BATCH_SIZE, scoring.PAGE_SIZE = BATCH, BATCH * batches
    Workspace(id=workspace_id, name=workspace_id, subscription_tier="enterprise").save()
    with Prospect.batch_write() as batch:
        for n in range(3 * scoring.PAGE_SIZE + 1):
            batch.save(Prospect(workspace_id=workspace_id, id=f"p-{n:05d}", name=f"P{n}"))
    run = client.trigger("bulk-score-leads", {"workspaceId": workspace_id})
    stack.source_for_task("bulk-score-leads").poll_once()
    done = client.wait(run.id, timeout=600, poll=0.5)
    if done.status != "COMPLETED":
        raise SystemExit(f"bulk run {done.status}: {done.error}")
    return _history(stack, run.id)


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="crmjobs-bench-"))
    parameters = {"ScoringPagesPerExecution": "2", "IndexingPagesPerExecution": "2"}
    defaults = {}
    with LocalRuntime(TEMPLATE, data_dir=data_dir, in_process=True, parameters=parameters) as stack:
        for name, value in load_template(TEMPLATE)["Parameters"].items():
            if name.endswith("PagesPerExecution"):
                defaults[name] = int(value["Default"])
        measured = {}
        for family, (batches, _) in PRODUCTION.items():
            histories = _bulk_run(stack, f"ws-history-{family}", batches)
            first = histories[0]
            per_page = Counter(_page_costs(first)).most_common(1)[0][0]
            listed_pages = len(_page_costs(first))
            overhead = len(first) - listed_pages * per_page
            measured[family] = (batches, per_page, overhead)
            print(
                f"{family}: {batches} batches a page -> {per_page} events a page; an execution "
                f"of 2 pages: {len(first)} events ({overhead} for its start, hand-over and end); "
                f"{len(histories)} executions"
            )
        retried = _retry_cost(stack)
        print(f"a retried task adds {retried} events (TaskFailed, TaskScheduled, TaskStarted)")
    print()
    for family, (batches, per_page, overhead) in measured.items():
        parameter = PRODUCTION[family][1]
        pages = defaults[parameter]
        worst_page = per_page + (batches + 1) * MAX_RETRIES * retried
        typical = overhead + pages * per_page
        worst = overhead + pages * worst_page
        fits = (HISTORY_LIMIT - overhead) // worst_page
        print(
            f"{parameter}={pages}: {typical:,} events an execution, {worst:,} if every task is "
            f"retried {MAX_RETRIES} times ({worst / HISTORY_LIMIT:.0%} of {HISTORY_LIMIT:,}); "
            f"at most {fits} such pages fit; {pages * PAGE_SIZE:,} records an execution"
        )
    return 0


def _retry_cost(stack: LocalRuntime) -> int:
    """Events one failed-then-retried batch task adds to its execution's history."""
    failed: set[str] = set()
    batch_get = Prospect.batch_get

    def fail_once(keys, *args, **kwargs):
        keys = list(keys)
        first = keys[0][1]
        if first == "p-00000" and first not in failed:
            failed.add(first)
            raise ConnectionError("transient")
        return batch_get(keys, *args, **kwargs)

    plain = len(_bulk_run(stack, "ws-history-plain", 1)[0])
    Prospect.batch_get = fail_once
    try:
        retried = len(_bulk_run(stack, "ws-history-retried", 1)[0])
    finally:
        Prospect.batch_get = batch_get
    return retried - plain


if __name__ == "__main__":
    sys.exit(main())
