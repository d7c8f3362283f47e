"""Counting the AWS requests a benchmark makes, shared by the benchmarks."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import botocore.client

_not_counting = threading.local()


@contextmanager
def uncounted() -> Iterator[None]:
    """This thread's AWS requests inside the block are left out (a bench waiting on a run)."""
    _not_counting.active = True
    try:
        yield
    finally:
        _not_counting.active = False


@contextmanager
def counting_aws_requests() -> Iterator[Counter[str]]:
    """Count every AWS API call made in this process (any thread), as "service:Operation",
    with ":table" (the table name's last part) for DynamoDB calls."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    original = botocore.client.BaseClient._make_api_call

    def counted(self, operation_name, api_params):
        if not getattr(_not_counting, "active", False):
            service = self.meta.service_model.service_name
            tables = api_params.get("RequestItems") or {api_params.get("TableName"): None}
            with lock:
                for table in tables:
                    suffix = f":{table.rsplit('-', 1)[-1]}" if table else ""
                    counts[f"{service}:{operation_name}{suffix}"] += 1
        return original(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = counted
    try:
        yield counts
    finally:
        botocore.client.BaseClient._make_api_call = original


def by_service(counts: Counter[str]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for key, count in counts.items():
        totals[key.split(":", 1)[0]] += count
    return totals
