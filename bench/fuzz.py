"""The fuzz suite at scale: inputs per task drawn from its payload JSON Schema and mutated
(tests/fuzz/fuzzing.py), through the three ways in (a plain message on the task's queue,
the client, the HTTP API) of the embedded local runtime (in-process moto), and the count
of each outcome per task, with every broken property listed.

Run: python bench/fuzz.py [--inputs 1000] [--task NAME ...]
Exits 1 if any property broke.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    }
)

from fuzzing import (  # noqa: E402
    TASK_NAMES,
    Tenants,
    http_client,
    plain_messages,
    send_client,
    send_http,
    send_plain,
    triggers,
)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from crmjobs_local.stack import LocalRuntime  # noqa: E402

WAYS = ("plain", "client", "http")


def fuzz(runtime, tenants, task: str, way: str, count: int, outcomes: Counter, broken: list):
    api = http_client(runtime)
    strategy = plain_messages(task, tenants) if way == "plain" else triggers(task, tenants)

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(item=strategy)
    def run(item):
        if way == "plain":
            result = send_plain(runtime, item)
        elif way == "client":
            result = send_client(runtime, item)
        else:
            result = send_http(runtime, api, item)
        outcomes[(way, result.outcome)] += 1
        broken.extend((way, item.kind, problem) for problem in result.broken)

    run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1000, help="inputs per task (all ways)")
    parser.add_argument("--task", action="append", choices=TASK_NAMES, help="only these tasks")
    args = parser.parse_args()
    tasks = args.task or list(TASK_NAMES)
    per_way = [args.inputs // len(WAYS) + (n < args.inputs % len(WAYS)) for n in range(3)]
    failed = False
    with tempfile.TemporaryDirectory(prefix="crmjobs-fuzz-") as data_dir:
        with LocalRuntime(ROOT / "template.yaml", data_dir=Path(data_dir), in_process=True) as rt:
            tenants = Tenants.seed(f"fz-{uuid.uuid4().hex[:6]}")
            before = tenants.snapshot()
            print(f"{args.inputs} inputs per task ({', '.join(map(str, per_way))} by way)")
            for task in tasks:
                outcomes: Counter = Counter()
                broken: list = []
                started = time.perf_counter()
                for way, count in zip(WAYS, per_way, strict=True):
                    fuzz(rt, tenants, task, way, count, outcomes, broken)
                elapsed = time.perf_counter() - started
                total = sum(outcomes.values())
                print(f"\n{task}: {total} inputs in {elapsed:.0f} s, {len(broken)} broken")
                for (way, outcome), n in sorted(outcomes.items()):
                    print(f"  {way:<7} {outcome:<45} {n:>5}")
                for way, kind, problem in broken[:10]:
                    print(f"  BROKEN {way} {kind}: {problem}")
                failed = failed or bool(broken)
            unchanged = tenants.snapshot() == before
            print(f"\nthe other workspace's records unchanged: {unchanged}")
    return 1 if failed or not unchanged else 0


if __name__ == "__main__":
    sys.exit(main())
