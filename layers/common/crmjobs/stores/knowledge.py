"""Knowledge items: read one or a batch in a workspace, list a page of indexing states, and
the status writes of indexing (processing, ready, failed), each over the item as read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from crmjobs.errors import Conflict, NotFound
from crmjobs.models import KnowledgeItem
from crmjobs.models.base import check_readable, flag_unreadable
from crmjobs.stores.dynamodb import Page, conflict_on_failed_condition, query_page

#: What a page of indexing states reads: the keys too (PynamoDB rebuilds a cursor from the
#: last item when a page stops) and what decides whether an item may be due; no content.
_INDEXING_STATE = ["workspaceId", "id", "status", "updatedAt", "indexedAt", "embeddingModel"]


def get(workspace_id: str, item_id: str) -> KnowledgeItem:
    """The item as it is now (a consistent read); NotFound outside its workspace."""
    item = find(workspace_id, item_id)
    if item is None:
        raise NotFound("knowledge item not found")
    check_readable(item, required=True)
    return item


def find(workspace_id: str, item_id: str) -> KnowledgeItem | None:
    return KnowledgeItem.get_in_workspace(workspace_id, item_id, consistent_read=True)


def get_many(workspace_id: str, item_ids: Iterable[str]) -> list[KnowledgeItem]:
    """The workspace's items among these ids (consistent reads); missing ones are left out,
    unreadable ones flagged (unreadable_fields; `require_readable` raises for them)."""
    keys = [(workspace_id, item_id) for item_id in item_ids]
    with flag_unreadable():
        return list(KnowledgeItem.batch_get(keys, consistent_read=True))


def require_readable(item: KnowledgeItem) -> None:
    """MalformedRecord for an item that cannot be indexed as stored (a value that cannot
    be read, a required one missing)."""
    check_readable(item, required=True)


def indexing_states(
    workspace_id: str, cursor: dict[str, Any] | None, limit: int
) -> Page[KnowledgeItem]:
    """Up to `limit` items of the workspace with only their keys and indexing fields."""
    with flag_unreadable():
        return query_page(
            KnowledgeItem.query, workspace_id, cursor, limit, attributes_to_get=_INDEXING_STATE
        )


def mark_processing(item: KnowledgeItem) -> None:
    """Status processing while its chunks are written; NotFound if it was deleted."""
    try:
        with conflict_on_failed_condition(f"knowledge item {item.id} was deleted"):
            item.update(
                actions=[KnowledgeItem.status.set("processing")],
                condition=KnowledgeItem.id.exists(),
            )
    except Conflict:
        raise NotFound("knowledge item not found") from None


def mark_ready(
    item: KnowledgeItem, *, chunk_count: int, indexed_at: datetime, digest: str, model_id: str
) -> None:
    """Indexed with this content and model; Conflict when the item was edited or deleted
    since it was read."""
    with conflict_on_failed_condition(f"knowledge item {item.id} changed while it was indexed"):
        item.update(
            actions=[
                KnowledgeItem.status.set("ready"),
                KnowledgeItem.chunk_count.set(chunk_count),
                KnowledgeItem.indexed_at.set(indexed_at),
                KnowledgeItem.content_hash.set(digest),
                KnowledgeItem.embedding_model.set(model_id),
                KnowledgeItem.processing_error.remove(),
            ],
            condition=item.unchanged_since_read(),
        )


def mark_indexing_failed(item: KnowledgeItem, message: str) -> bool:
    """Status failed with the error; False (nothing written) when the item was deleted or
    edited meanwhile, so a newer run indexes the new content."""
    try:
        with conflict_on_failed_condition(f"knowledge item {item.id} changed"):
            item.update(
                actions=[
                    KnowledgeItem.status.set("failed"),
                    KnowledgeItem.processing_error.set(message),
                ],
                condition=item.unchanged_since_read(),
            )
    except Conflict:
        return False
    return True
