"""Per-workspace concurrency by subscription tier, as leases in one DynamoDB item.

A run takes a slot before it executes and gives it back after. A lease expires after the
longest attempt, so a crashed attempt cannot hold a slot forever; a bulk run that goes on
in a state machine holds its slot for up to a day, until its last step gives it back.
"""

from __future__ import annotations

import time

from pynamodb.expressions.condition import size

from crmjobs.errors import Conflict
from crmjobs.models import ConcurrencySlots
from crmjobs.stores.dynamodb import conflict_on_failed_condition
from crmjobs.tasks import TASK_TIMEOUT_SECONDS

LEASE_SECONDS = TASK_TIMEOUT_SECONDS + 60
DETACHED_LEASE_SECONDS = 24 * 3600


def _take(workspace_id: str, run_id: str, limit: int, now: float) -> bool:
    holder = ConcurrencySlots.holders[run_id]
    try:
        with conflict_on_failed_condition(f"workspace {workspace_id} is at its limit"):
            ConcurrencySlots(id=workspace_id).update(
                actions=[holder.set(int(now + LEASE_SECONDS))],
                condition=ConcurrencySlots.holders.exists()
                & ((size(ConcurrencySlots.holders) < limit) | holder.exists()),
            )
        return True
    except Conflict:
        return False


def _prepare(workspace_id: str, now: float) -> None:
    """Create the slots item on first use and drop leases that expired."""
    try:
        slots = ConcurrencySlots.get(workspace_id, consistent_read=True)
    except ConcurrencySlots.DoesNotExist:
        try:
            with conflict_on_failed_condition("created concurrently"):
                ConcurrencySlots(id=workspace_id, holders={}).save(
                    condition=ConcurrencySlots.id.does_not_exist()
                )
        except Conflict:
            pass
        return
    expired = [run for run, until in (slots.holders or {}).as_dict().items() if until < now]
    for run_id in expired:
        try:
            with conflict_on_failed_condition("renewed meanwhile, so not expired"):
                ConcurrencySlots(id=workspace_id).update(
                    actions=[ConcurrencySlots.holders[run_id].remove()],
                    condition=ConcurrencySlots.holders[run_id] < int(now),
                )
        except Conflict:
            pass


def acquire(workspace_id: str, run_id: str, limit: int) -> bool:
    """Take a slot for the run; False when the workspace is at its limit."""
    now = time.time()
    if _take(workspace_id, run_id, limit, now):
        return True
    _prepare(workspace_id, now)
    return _take(workspace_id, run_id, limit, now)


def extend(workspace_id: str, run_id: str, seconds: int) -> None:
    """Keep the run's slot for `seconds` from now (a run that went on in a state machine);
    nothing when the run gave its slot back already."""
    try:
        with conflict_on_failed_condition("the slot was given back"):
            ConcurrencySlots(id=workspace_id).update(
                actions=[ConcurrencySlots.holders[run_id].set(int(time.time() + seconds))],
                condition=ConcurrencySlots.holders[run_id].exists(),
            )
    except Conflict:
        pass


def release(workspace_id: str, run_id: str) -> None:
    ConcurrencySlots(id=workspace_id).update(
        actions=[ConcurrencySlots.holders[run_id].remove()],
        condition=ConcurrencySlots.id.exists(),
    )
