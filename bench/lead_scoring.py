"""Lead scoring figures: the pure function's rate, and a bulk run over N prospects through
the real path (task Lambda -> state machine -> page and batch Lambdas) on the embedded
local runtime, counting DynamoDB requests.

Run: python bench/lead_scoring.py [--prospects 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.client

sys.path.insert(0, str(Path(__file__).parent))
from scoring_pure import measure_pure_scoring, synthetic_prospects  # noqa: E402

from crmjobs import client  # noqa: E402
from crmjobs.adapters.aws import client as aws_client  # noqa: E402
from crmjobs.local.stack import LocalStack  # noqa: E402
from crmjobs.models import Prospect, Workspace  # noqa: E402

WORKSPACE = "ws-bench"


@contextmanager
def counting_dynamodb_requests():
    """Count every DynamoDB API call made in this process, by operation."""
    counts: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counted(self, operation_name, api_params):
        if self.meta.service_model.service_name == "dynamodb":
            counts[operation_name] += 1
        return original(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = counted
    try:
        yield counts
    finally:
        botocore.client.BaseClient._make_api_call = original


def seed(count: int) -> None:
    Workspace(id=WORKSPACE, name="Bench", subscription_tier="enterprise").save()
    now = datetime.now(UTC)
    with Prospect.batch_write() as batch:
        for n, facts in enumerate(synthetic_prospects(count, now)):
            batch.save(
                Prospect(
                    workspace_id=WORKSPACE,
                    id=f"p-{n:06d}",
                    name=f"Prospect {n}",
                    email=facts.email,
                    phone=facts.phone,
                    company=facts.company,
                    title=facts.title,
                    stage=facts.stage,
                    estimated_value=facts.estimated_value,
                    last_contacted_at=facts.last_contacted_at,
                )
            )


def bulk_run(stack: LocalStack) -> tuple[dict, float, Counter[str]]:
    """One bulk-score-leads run through its queue; (output, seconds, requests)."""
    run = client.trigger("bulk-score-leads", {"workspaceId": WORKSPACE})
    with counting_dynamodb_requests() as counts:
        started = time.perf_counter()
        stack.source_for_task("bulk-score-leads").poll_once()
        elapsed = time.perf_counter() - started
    done = client.retrieve(run.id)
    if done.status != "COMPLETED":
        raise SystemExit(f"bulk run {done.status}: {done.error}")
    return done.output, elapsed, counts


def state_machine_run(stack: LocalStack, now: datetime) -> tuple[dict, float, Counter[str]]:
    """The bulk state machine alone, as if run at `now` (to age every score past 24 h)."""
    sfn = aws_client("stepfunctions")
    arn = stack.resources.environment().get("STATE_MACHINE_ARN_BULK_SCORE_LEADS") or next(
        iter(v for k, v in stack.resources.state_machines.items() if "Score" in k)
    )
    with counting_dynamodb_requests() as counts:
        started = time.perf_counter()
        execution = sfn.start_execution(
            stateMachineArn=arn,
            name=f"bench-{time.time_ns()}",
            input=json.dumps({"workspaceId": WORKSPACE, "now": now.isoformat()}),
        )["executionArn"]
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    if described["status"] != "SUCCEEDED":
        raise SystemExit(f"state machine {described['status']}: {described.get('cause')}")
    return json.loads(described["output"]), elapsed, counts


def report(label: str, output: dict, elapsed: float, counts: Counter[str], per: int) -> None:
    total = sum(counts.values())
    print(f"\n{label}")
    print(f"  output: {output}")
    print(f"  wall time: {elapsed:.1f} s ({per / elapsed:,.0f} prospects/s)")
    print(f"  DynamoDB requests: {total} = {total / per:.4f} per prospect  {dict(counts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prospects", type=int, default=10_000)
    args = parser.parse_args()
    n = args.prospects
    print(f"score_prospect (pure): {measure_pure_scoring():,.0f} prospects/s")
    with (
        tempfile.TemporaryDirectory() as data,
        LocalStack(data_dir=Path(data), in_process=True) as stack,
    ):
        seed(n)
        output, elapsed, counts = bulk_run(stack)
        report(
            f"first bulk run over {n:,} prospects (all need scoring)",
            output,
            elapsed,
            counts,
            output["changed"],
        )
        output, elapsed, counts = bulk_run(stack)
        report("second bulk run, nothing changed (none due)", output, elapsed, counts, n)
        output, elapsed, counts = state_machine_run(stack, datetime.now(UTC) + timedelta(hours=25))
        totals = output["totals"]
        report(
            "scores aged past 24 h, unchanged (all due, none rewritten)",
            totals | {"pages": output["pages"]},
            elapsed,
            counts,
            totals["unchanged"],
        )


if __name__ == "__main__":
    main()
