"""Workspaces: the concurrency limit of a workspace's subscription tier.

Every run asks for its workspace's limit, so the answer is kept per container for a short
while: a tier change takes effect within TIER_CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time

from crmjobs.errors import NotFound
from crmjobs.models import Workspace
from crmjobs.models.entities import SYSTEM_CONCURRENCY
from crmjobs.tasks import SYSTEM_WORKSPACE

TIER_CACHE_SECONDS = 60
_CACHE_ENTRIES = 10_000

_lock = threading.Lock()
#: (table, workspace id) -> (monotonic expiry, limit); the table names the stack, so two
#: local stacks in one process never share an answer.
_limits: dict[tuple[str, str], tuple[float, int]] = {}


def concurrency_limit(workspace_id: str) -> int:
    """How many runs of the workspace may execute at once; NotFound for no such workspace."""
    if workspace_id == SYSTEM_WORKSPACE:
        return SYSTEM_CONCURRENCY
    key = (Workspace.Meta.table_name, workspace_id)
    now = time.monotonic()
    with _lock:
        cached = _limits.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        limit = Workspace.get(workspace_id).concurrency_limit
    except Workspace.DoesNotExist:
        raise NotFound(f"workspace {workspace_id} not found") from None
    with _lock:
        if len(_limits) >= _CACHE_ENTRIES:
            _limits.pop(next(iter(_limits)))
        _limits[key] = (now + TIER_CACHE_SECONDS, limit)
    return limit


def forget_cached_limits() -> None:
    """Drop every cached limit (a local stack starting over)."""
    with _lock:
        _limits.clear()
