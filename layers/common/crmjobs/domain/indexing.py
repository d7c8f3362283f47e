"""When a knowledge item needs indexing: pure rules over its stored indexing fields."""

from __future__ import annotations

from datetime import datetime


def is_indexed(
    *,
    status: str | None,
    stored_hash: str | None,
    stored_model: str | None,
    digest: str,
    model_id: str,
) -> bool:
    """Indexed, with this content (its hash) and this embedding model."""
    return status == "ready" and stored_hash == digest and stored_model == model_id


def may_need_indexing(
    *,
    status: str | None,
    indexed_at: datetime | None,
    updated_at: datetime | None,
    stored_model: str | None,
    model_id: str,
) -> bool:
    """Never indexed, edited since, or indexed by another embedding model. Without the
    content (a page lists no content) this can only say "may": the content hash confirms."""
    return (
        status != "ready"
        or indexed_at is None
        or stored_model != model_id
        or (updated_at is not None and updated_at > indexed_at)
    )
