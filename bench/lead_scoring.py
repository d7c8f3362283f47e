"""Lead scoring figures: the pure function's rate, and a bulk run over N prospects through
the real path (task Lambda -> state machine -> page and batch Lambdas) on the embedded
local runtime, counting DynamoDB requests.

Run: python bench/lead_scoring.py [--prospects 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from aws_requests import counting_aws_requests, uncounted  # noqa: E402
from scoring_pure import measure_pure_scoring, synthetic_prospects  # noqa: E402

from crmjobs import client  # noqa: E402
from crmjobs.models import Prospect, Workspace  # noqa: E402
from crmjobs_local.stack import LocalRuntime  # noqa: E402

WORKSPACE = "ws-bench"


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


def bulk_run(stack: LocalRuntime) -> tuple[dict, float, Counter[str]]:
    """One bulk-score-leads run through its queue and state machine until the run is
    recorded COMPLETED; (output, seconds, DynamoDB requests)."""
    run = client.trigger("bulk-score-leads", {"workspaceId": WORKSPACE})
    with counting_aws_requests() as counts:
        started = time.perf_counter()
        stack.source_for_task("bulk-score-leads").poll_once()
        with uncounted():
            done = client.wait(run.id, timeout=3600, poll=0.5)
        elapsed = time.perf_counter() - started
    if done.status != "COMPLETED":
        raise SystemExit(f"bulk run {done.status}: {done.error}")
    return done.output, elapsed, counts


def age_scores(hours: int) -> None:
    """Move every stored score `hours` into the past (not counted), so all are due again."""
    for prospect in Prospect.query(WORKSPACE):
        prospect.update(
            actions=[Prospect.scored_at.set(prospect.scored_at - timedelta(hours=hours))]
        )


def report(label: str, output: dict, elapsed: float, counts: Counter[str], per: int) -> None:
    dynamodb = {key: n for key, n in counts.items() if key.startswith("dynamodb:")}
    prospects = {key: n for key, n in dynamodb.items() if key.endswith(":prospects")}
    bookkeeping = {key: n for key, n in dynamodb.items() if key not in prospects}
    total = sum(dynamodb.values())
    print(f"\n{label}")
    print(f"  output: {output}")
    print(f"  wall time: {elapsed:.1f} s ({per / elapsed:,.0f} prospects/s)")
    print(f"  DynamoDB requests: {total} = {total / per:.4f} per prospect")
    print(f"    prospects table: {sum(prospects.values())} {prospects}")
    print(f"    run bookkeeping (ledger, slot, idempotency): {sum(bookkeeping.values())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prospects", type=int, default=10_000)
    args = parser.parse_args()
    n = args.prospects
    print(f"score_prospect (pure): {measure_pure_scoring():,.0f} prospects/s")
    with (
        tempfile.TemporaryDirectory() as data,
        LocalRuntime(data_dir=Path(data), in_process=True) as stack,
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
        age_scores(25)
        output, elapsed, counts = bulk_run(stack)
        report(
            "scores aged past 24 h, mostly unchanged (all due, only changes rewritten)",
            output,
            elapsed,
            counts,
            output["processed"],
        )


if __name__ == "__main__":
    main()
