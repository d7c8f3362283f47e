"""A workspace's suppression list: addresses it must not mail (a permanent bounce, a
complaint, an unsubscribe). Keyed (workspaceId, address): an address suppressed in one
workspace is not in another's list."""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.exceptions import PutError

from crmjobs.models import Suppression
from crmjobs.stores.dynamodb import CONDITION_FAILED

BATCH_GET_LIMIT = 100


def suppressed_among(workspace_id: str, addresses: Iterable[str]) -> set[str]:
    """The addresses (lower-cased) of the workspace's list among these."""
    wanted = sorted({address for address in addresses if address})
    found: set[str] = set()
    for start in range(0, len(wanted), BATCH_GET_LIMIT):
        keys = [(workspace_id, address) for address in wanted[start : start + BATCH_GET_LIMIT]]
        found.update(
            item.email for item in Suppression.batch_get(keys, attributes_to_get=["email"])
        )
    return found


def is_suppressed(workspace_id: str, address: str) -> bool:
    return bool(suppressed_among(workspace_id, [address]))


def suppress(workspace_id: str, address: str, reason: str) -> bool:
    """Add the address; False when it was already listed (its first reason is kept)."""
    try:
        Suppression(workspace_id, address, reason=reason).save(
            condition=Suppression.email.does_not_exist()
        )
    except PutError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            return False
        raise
    return True
