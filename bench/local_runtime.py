"""What the local task runtime costs per run: one score-lead run three ways, interleaved.

- service: ``score_and_store`` on a prospect read beforehand, untimed (the work itself:
  one conditional write);
- handler: the score-lead Lambda handler called with a prebuilt one-record SQS event (a
  plain payload, as any producer sends: the handler records the run, takes a concurrency
  slot, runs the service under idempotency and completes the run in the ledger);
- runtime: ``client.trigger`` (ledger + SQS send), then one poll of the queue's event
  source (receive, handler, delete).

The runtime series runs with the event source's batching window set to 0 s, to measure
the runtime's own work; the template's 1 s window (Lambda's MaximumBatchingWindowInSeconds,
which holds a lone message while it waits for more) is shown apart. moto runs in-process:
an AWS request here costs moto's Python work, not a network round trip.

Run: python bench/local_runtime.py [--runs 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_requests import by_service, counting_aws_requests

from crmjobs import client, ledger
from crmjobs.models import Prospect, Workspace
from crmjobs.services.scoring import score_and_store
from crmjobs_local.event_sources import sqs_event
from crmjobs_local.stack import LocalRuntime

WORKSPACE = "ws-bench-runtime"
TASK = "score-lead"
HANDLER_FUNCTION = "ScoreLeadFunction"
WARM_UP_ROUNDS = 3
WINDOWED_RUNS = 5
MODES = ("service", "handler", "runtime")
#: The table the work itself reads and writes; DynamoDB requests elsewhere are bookkeeping.
WORK_TABLE = "prospects"


def seed_prospects(prefix: str, count: int) -> list[str]:
    """Unscored prospects, so every run writes a score (the same work in every mode)."""
    ids = [f"{prefix}-{n:04d}" for n in range(count)]
    with Prospect.batch_write() as batch:
        for n, prospect_id in enumerate(ids):
            batch.save(
                Prospect(
                    workspace_id=WORKSPACE,
                    id=prospect_id,
                    name=f"Prospect {n}",
                    email=f"p{n}@acme.com",
                    company="Acme",
                    title="VP of Sales",
                    stage="qualified",
                    estimated_value=50_000,
                )
            )
    return ids


def plain_message_event(prospect_id: str, queue_arn: str) -> tuple[dict, str]:
    """A one-record SQS event as Lambda builds it, and the run id the runtime gives it."""
    body = json.dumps({"workspaceId": WORKSPACE, "prospectId": prospect_id})
    message_id = str(uuid.uuid4())
    message = {
        "MessageId": message_id,
        "ReceiptHandle": f"bench-{message_id}",
        "Body": body,
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(time.time() * 1000)),
            "SenderId": "AIDABENCH",
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        },
    }
    return sqs_event([message], queue_arn), ledger.run_id_for_message(TASK, message_id)


class Runner:
    """One score-lead run per mode, each on its own prospect. `prepare_<mode>` does the
    untimed setup; `<mode>` is the measured part and returns the run id to check, if any."""

    def __init__(self, stack: LocalRuntime) -> None:
        self.stack = stack
        self.source = stack.source_for_task(TASK)

    def prepare_service(self, prospect_id: str) -> Prospect:
        return Prospect.get(WORKSPACE, prospect_id, consistent_read=True)

    def service(self, prospect: Prospect) -> str | None:
        if not score_and_store(prospect, datetime.now(UTC)).changed:
            raise SystemExit(f"service run on {prospect.id} wrote nothing")
        return None

    def prepare_handler(self, prospect_id: str) -> tuple[dict, str]:
        return plain_message_event(prospect_id, self.source.queue_arn)

    def handler(self, prepared: tuple[dict, str]) -> str | None:
        event, run_id = prepared
        response = self.stack.invoke(HANDLER_FUNCTION, event)
        if response.get("batchItemFailures"):
            raise SystemExit(f"handler run {run_id} failed: {response}")
        return run_id

    def prepare_runtime(self, prospect_id: str) -> str:
        return prospect_id

    def runtime(self, prospect_id: str) -> str | None:
        run = client.trigger(TASK, {"workspaceId": WORKSPACE, "prospectId": prospect_id})
        outcome = self.source.poll_once()
        if outcome is None or not outcome.succeeded:
            raise SystemExit(f"runtime run {run.id}: {outcome}")
        return run.id

    def timed(self, mode: str, prospect_id: str) -> tuple[float, str | None, Counter[str]]:
        """(milliseconds, run id, AWS requests) of one measured run."""
        prepared = getattr(self, f"prepare_{mode}")(prospect_id)
        run_one: Callable[[Any], str | None] = getattr(self, mode)
        with counting_aws_requests() as counts:
            started = time.perf_counter()
            run_id = run_one(prepared)
            elapsed = time.perf_counter() - started
        return elapsed * 1000, run_id, counts


def check_completed(run_ids: list[str]) -> None:
    for run_id in run_ids:
        view = client.retrieve(run_id)
        if view.status != "COMPLETED":
            raise SystemExit(f"run {run_id} is {view.status}: {view.error}")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure_interleaved(
    runner: Runner, prospects: dict[str, list[str]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, Counter[str]]]:
    """Round i runs each mode once, so load changes on the machine hit all three alike."""
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    requests: dict[str, Counter[str]] = {mode: Counter() for mode in MODES}
    run_ids: list[str] = []
    # The handler's CloudWatch metrics (EMF) still print, to nowhere instead of the report.
    with open(os.devnull, "w") as discard, redirect_stdout(discard):
        for round_index in range(rounds):
            for mode in MODES:
                elapsed, run_id, counts = runner.timed(mode, prospects[mode][round_index])
                timings[mode].append(elapsed)
                requests[mode].update(counts)
                if run_id is not None:
                    run_ids.append(run_id)
    check_completed(run_ids)
    return timings, requests


def windowed_runtime_runs(runner: Runner, prospect_ids: list[str]) -> list[float]:
    """Lone runs through the event source with the template's batching window."""
    timings, run_ids = [], []
    with open(os.devnull, "w") as discard, redirect_stdout(discard):
        for prospect_id in prospect_ids:
            elapsed, run_id, _ = runner.timed("runtime", prospect_id)
            timings.append(elapsed)
            run_ids.append(run_id)
    check_completed(run_ids)
    return timings


def report(timings: dict[str, list[float]], requests: dict[str, Counter[str]], rounds: int) -> None:
    print(f"\nper-run milliseconds, {rounds} interleaved rounds (runtime = trigger + poll)")
    print(f"{'run':>4} {'service':>9} {'handler':>9} {'runtime':>9}")
    for index in range(rounds):
        row = " ".join(f"{timings[mode][index]:9.2f}" for mode in MODES)
        print(f"{index + 1:>4} {row}")
    print(f"\n{'':>8} {'service':>9} {'handler':>9} {'runtime':>9}")
    summaries = {
        "median": statistics.median,
        "mean": statistics.fmean,
        "p95": lambda samples: percentile(samples, 0.95),
        "min": min,
        "max": max,
    }
    for label, summary in summaries.items():
        row = " ".join(f"{summary(timings[mode]):9.2f}" for mode in MODES)
        print(f"{label:>8} {row}")
    medians = {mode: statistics.median(timings[mode]) for mode in MODES}
    print("\nratios of medians:")
    print(f"  handler / service: {medians['handler'] / medians['service']:.1f}x")
    print(f"  runtime / service: {medians['runtime'] / medians['service']:.1f}x")
    print(f"  runtime / handler: {medians['runtime'] / medians['handler']:.1f}x")
    print_requests_per_run(requests, rounds)


def print_requests_per_run(requests: dict[str, Counter[str]], rounds: int) -> None:
    """Per run, by service, table (or queue) and operation; the DynamoDB requests on other
    tables than the prospects' are the job runner's bookkeeping around the work."""
    print("\nAWS requests per run (moto, in-process), by table and operation:")
    # "service:Operation[:table]" sorted by service, table, operation.
    keys = sorted(set().union(*requests.values()), key=lambda k: (*k.split(":")[::2], k))
    print(f"  {'request':<40} " + " ".join(f"{mode:>8}" for mode in MODES))
    for key in keys:
        service, operation, *table = key.split(":")
        label = f"{service} {table[0] if table else ''} {operation}".replace("  ", " ")
        print(f"  {label:<40} " + " ".join(f"{requests[m][key] / rounds:8.1f}" for m in MODES))
    for mode in MODES:
        services = by_service(requests[mode])
        bookkeeping = sum(
            count
            for key, count in requests[mode].items()
            if key.startswith("dynamodb:") and not key.endswith(f":{WORK_TABLE}")
        )
        detail = ", ".join(
            f"{name} {count / rounds:.1f}" for name, count in sorted(services.items())
        )
        print(
            f"  {mode:>8}: {sum(services.values()) / rounds:.1f} in all ({detail});"
            f" DynamoDB bookkeeping {bookkeeping / rounds:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    rounds = args.runs
    with (
        tempfile.TemporaryDirectory() as data,
        LocalRuntime(data_dir=Path(data), in_process=True) as stack,
    ):
        Workspace(id=WORKSPACE, name="Bench", subscription_tier="enterprise").save()
        prospects = {mode: seed_prospects(mode, rounds) for mode in MODES}
        warm_up = {mode: seed_prospects(f"warm-{mode}", WARM_UP_ROUNDS) for mode in MODES}
        windowed = seed_prospects("windowed", WINDOWED_RUNS)
        runner = Runner(stack)
        configured_window = runner.source.batching_window_s
        runner.source.batching_window_s = 0
        try:
            measure_interleaved(runner, warm_up, WARM_UP_ROUNDS)
            timings, requests = measure_interleaved(runner, prospects, rounds)
        finally:
            runner.source.batching_window_s = configured_window
        lone = windowed_runtime_runs(runner, windowed)
        report(timings, requests, rounds)
        print(
            f"\nlone run through the runtime with the template's {configured_window:g} s batching"
            f" window: median {statistics.median(lone):.0f} ms over {len(lone)} runs"
            f" ({', '.join(f'{ms:.0f}' for ms in lone)})"
        )


if __name__ == "__main__":
    main()
