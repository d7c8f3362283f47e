"""The dashboard's run list over 10,000 runs of one workspace, a page at a time.

Seeds the run ledger (PynamoDB batch writes: several tasks, statuses, tags, creation
times over a week), serves the dashboard on 127.0.0.1 and walks the list page by page
through its "Older" cursors, over HTTP, for each filter: none, a task, a status, a task
and a status, a tag, a time range. Prints the median and p95 response time per page and
the DynamoDB requests per page (every one a Query of the workspace's partition of a runs
index; a Scan would be reported and fail the benchmark). moto runs in-process and reads
every item of the table for each Query (DynamoDB reads only the page), so beside each
page's response time is the dashboard's own part of it (routing, rendering, HTTP,
PynamoDB; the AWS calls themselves, botocore and moto, left out).

Run: python bench/dashboard.py [--runs 10000] [--pages 10]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.client
import requests
from aws_requests import counting_aws_requests

from crmjobs import ledger
from crmjobs.ledger import RunStatus
from crmjobs.models import Run, Workspace
from crmjobs_local.dashboard import create_app
from crmjobs_local.dashboard.app import PAGE_SIZE
from crmjobs_local.http_api import BackgroundServer
from crmjobs_local.stack import LocalRuntime

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "ws-bench-dashboard"
TASK_MIX = (("score-lead", 70), ("index-document", 20), ("bulk-score-leads", 10))
STATUS_MIX = (
    (RunStatus.COMPLETED, 80),
    (RunStatus.FAILED, 10),
    (RunStatus.QUEUED, 5),
    (RunStatus.CANCELED, 5),
)
TAGGED_SHARE = 0.1
_OLDER = re.compile(r'href="([^"]+)"[^>]*id="older"')


def _pick(mix, chance: random.Random):
    return chance.choices([value for value, _ in mix], weights=[w for _, w in mix])[0]


def seed_runs(count: int, now: datetime) -> None:
    chance = random.Random(7)
    with Run.batch_write() as batch:
        for n in range(count):
            task = _pick(TASK_MIX, chance)
            status = _pick(STATUS_MIX, chance)
            created = ledger.iso(now - timedelta(seconds=n * 7 * 24 * 3600 / count))
            payload = {"workspaceId": WORKSPACE}
            if task == "score-lead":
                payload["prospectId"] = f"p-{n:05d}"
            elif task == "index-document":
                payload["itemId"] = f"doc-{n:05d}"
            run = ledger.new_run(
                run_id=ledger.new_run_id(),
                task=task,
                workspace_id=WORKSPACE,
                payload=payload,
                status=status,
                tags=("import",) if chance.random() < TAGGED_SHARE else (),
            )
            run.created_at = run.updated_at = created
            run.attempts = 0 if status in (RunStatus.QUEUED, RunStatus.CANCELED) else 1
            batch.save(run)


@contextmanager
def timing_aws_requests() -> Iterator[list[float]]:
    """Seconds spent in AWS calls (here: in moto), appended per call, from any thread."""
    spent: list[float] = []
    original = botocore.client.BaseClient._make_api_call

    def timed(self, operation_name, api_params):
        started = time.perf_counter()
        try:
            return original(self, operation_name, api_params)
        finally:
            spent.append(time.perf_counter() - started)

    botocore.client.BaseClient._make_api_call = timed
    try:
        yield spent
    finally:
        botocore.client.BaseClient._make_api_call = original


def walk(
    session: requests.Session, url: str, pages: int, in_moto: list[float]
) -> tuple[list[float], list[float], list[int]]:
    """Follow the Older links from `url`: seconds per page, of them outside moto (the
    dashboard's own work), and runs per page."""
    seconds, own, sizes = [], [], []
    for _ in range(pages):
        moto_before = len(in_moto)
        started = time.perf_counter()
        response = session.get(url, timeout=120)
        elapsed = time.perf_counter() - started
        seconds.append(elapsed)
        own.append(elapsed - sum(in_moto[moto_before:]))
        response.raise_for_status()
        sizes.append(response.text.count("data-run="))
        older = _OLDER.search(response.text)
        if older is None:
            break
        url = url.split("/runs", 1)[0] + older.group(1).replace("&amp;", "&")
    return seconds, own, sizes


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=10, help="pages walked per filter")
    args = parser.parse_args()
    os.environ.update({"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    now = datetime.now(UTC)
    day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    three_days_ago = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    filters = {
        "none": {},
        "task": {"task": "index-document"},
        "status": {"status": "FAILED"},
        "task+status": {"task": "score-lead", "status": "FAILED"},
        "tag": {"tag": "import"},
        "time range": {"since": three_days_ago, "until": day_ago},
    }
    with (
        tempfile.TemporaryDirectory() as data,
        LocalRuntime(ROOT / "template.yaml", data_dir=Path(data), in_process=True),
    ):
        Workspace(id=WORKSPACE, name="Bench", subscription_tier="enterprise").save()
        started = time.perf_counter()
        seed_runs(args.runs, now)
        print(f"seeded {args.runs} runs in {time.perf_counter() - started:.1f} s")
        app = create_app(events_dir=ROOT / "events")
        with BackgroundServer(app) as server, requests.Session() as session:
            walk(session, f"{server.url}/runs?workspace={WORKSPACE}", 2, [])  # warm up
            print(
                f"\n{'filter':<12} {'pages':>5} {'runs/page':>9} {'median ms':>9} "
                f"{'p95 ms':>7} {'own median ms':>13} {'own p95 ms':>10} "
                f"{'DynamoDB req/page':>17}  operations"
            )
            for name, query in filters.items():
                url = f"{server.url}/runs?" + "&".join(
                    f"{key}={value}" for key, value in {"workspace": WORKSPACE, **query}.items()
                )
                with counting_aws_requests() as counts, timing_aws_requests() as in_moto:
                    seconds, own, sizes = walk(session, url, args.pages, in_moto)
                dynamodb = Counter(
                    {key: value for key, value in counts.items() if key.startswith("dynamodb:")}
                )
                scans = sum(value for key, value in dynamodb.items() if ":Scan" in key)
                per_page = sum(dynamodb.values()) / len(seconds)
                print(
                    f"{name:<12} {len(seconds):>5} {statistics.mean(sizes):>9.1f} "
                    f"{statistics.median(seconds) * 1000:>9.1f} "
                    f"{percentile(seconds, 0.95) * 1000:>7.1f} "
                    f"{statistics.median(own) * 1000:>13.1f} {percentile(own, 0.95) * 1000:>10.1f} "
                    f"{per_page:>17.2f}  "
                    f"{dict(dynamodb)}"
                )
                if scans:
                    raise SystemExit(f"{name}: {scans} Scan request(s): the list must not scan")
    print(f"\n(page size {PAGE_SIZE}; {args.runs} runs in one workspace)")


if __name__ == "__main__":
    main()
