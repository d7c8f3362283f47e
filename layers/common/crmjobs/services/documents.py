"""Document indexing and search services: index one item, the bulk fan-out's steps,
chunk removal when an item is deleted, and the hybrid search the agents use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from crmjobs.adapters.embeddings import Embedder, get_embedder
from crmjobs.adapters.vector_index import ChunkRecord, SearchHit, VectorIndex, get_vector_index
from crmjobs.domain.chunking import chunk_text, content_hash
from crmjobs.domain.indexing import is_indexed, may_need_indexing
from crmjobs.errors import Conflict, InvalidInput, NotFound, PermanentError
from crmjobs.models import KnowledgeItem
from crmjobs.models.base import unreadable_fields
from crmjobs.observability import logger
from crmjobs.runtime import Detached, RunContext
from crmjobs.schemas import (
    BulkIndexDocumentsPayload,
    IndexDocumentPayload,
    ReindexAllDocumentsPayload,
)
from crmjobs.services.fanout import PAGE_SIZE, BatchInput, PageState, next_page, start_fanout
from crmjobs.stores import knowledge

#: Items per indexing batch: small enough for one Lambda's time with embedding, large
#: enough to keep an execution's history (25,000 events) for ~85,000 due items.
BATCH_SIZE = 25
NO_CONTENT = "no content to index"


class ItemChanged(RuntimeError):
    """The item was edited while it was indexed: a retry indexes the new content."""


_ensured: set[int] = set()


def _index_for(embedder: Embedder) -> VectorIndex:
    """The vector index for this embedder's vectors, created once per process if missing."""
    index = get_vector_index(embedder.dimension)
    if id(index) not in _ensured:
        index.ensure_index()
        _ensured.add(id(index))
    return index


class IndexOutcome(BaseModel):
    itemId: str
    status: Literal["indexed", "unchanged"]
    chunkCount: int
    contentHash: str
    embeddingModel: str


def index_item(
    item: KnowledgeItem, *, force: bool, embedder: Embedder | None = None
) -> IndexOutcome:
    """Chunk, embed and write the item's chunks, replacing any it had; then mark it ready."""
    knowledge.require_readable(item)
    content = item.content or ""
    if not content.strip():
        raise InvalidInput(NO_CONTENT)
    embedder = embedder or get_embedder()
    digest = content_hash(content)
    if not force and is_indexed(
        status=item.status,
        stored_hash=item.content_hash,
        stored_model=item.embedding_model,
        digest=digest,
        model_id=embedder.model_id,
    ):
        return IndexOutcome(
            itemId=item.id,
            status="unchanged",
            chunkCount=int(item.chunk_count or 0),
            contentHash=digest,
            embeddingModel=embedder.model_id,
        )
    if item.status != "processing":
        knowledge.mark_processing(item)
    chunks = chunk_text(content)
    vectors = embedder.embed(chunks)
    index = _index_for(embedder)
    index.replace_item_chunks(
        item.workspace_id,
        item.id,
        [
            ChunkRecord(
                workspace_id=item.workspace_id,
                item_id=item.id,
                title=item.title,
                text=text,
                chunk_index=position,
                total_chunks=len(chunks),
                type=item.type,
                mime_type=item.mime_type,
                file_name=item.file_name,
                vector=vector,
            )
            for position, (text, vector) in enumerate(zip(chunks, vectors, strict=True))
        ],
    )
    try:
        knowledge.mark_ready(
            item,
            chunk_count=len(chunks),
            indexed_at=datetime.now(UTC),
            digest=digest,
            model_id=embedder.model_id,
        )
    except Conflict:
        if knowledge.find(item.workspace_id, item.id) is None:
            # Deleted while we indexed it: take back what we wrote.
            index.delete_item(item.workspace_id, item.id)
            raise NotFound("knowledge item not found") from None
        raise ItemChanged(f"item {item.id} changed while it was indexed; indexing again") from None
    return IndexOutcome(
        itemId=item.id,
        status="indexed",
        chunkCount=len(chunks),
        contentHash=digest,
        embeddingModel=embedder.model_id,
    )


def index_document(payload: IndexDocumentPayload, context: RunContext) -> IndexOutcome:
    item = knowledge.get(payload.workspaceId, payload.itemId)
    try:
        return index_item(item, force=False)
    except PermanentError as exc:
        knowledge.mark_indexing_failed(item, str(exc))
        raise
    except Exception as exc:
        if context.attempt >= context.max_attempts:
            knowledge.mark_indexing_failed(item, f"{type(exc).__name__}: {exc}")
        raise


# --- bulk indexing: the state machine's steps -----------------------------------------


def _list_due_items(state: PageState) -> tuple[list[str], int, dict[str, Any] | None]:
    """One page of the workspace's items (no content read); those that may need indexing:
    never indexed, edited since, or another embedding model. The batch step confirms
    with the content hash."""
    model_id = get_embedder().model_id
    page = knowledge.indexing_states(state.workspaceId, state.cursor, PAGE_SIZE)
    due = [
        item.id
        for item in page.items
        if state.force
        or unreadable_fields(item)  # its batch marks it failed, naming the field
        or may_need_indexing(
            status=item.status,
            indexed_at=item.indexed_at,
            updated_at=item.updated_at,
            stored_model=item.embedding_model,
            model_id=model_id,
        )
    ]
    return due, len(page.items), page.cursor


def list_documents_page(state: PageState) -> PageState:
    return next_page(state, _list_due_items, BATCH_SIZE)


def index_documents_batch(batch: BatchInput) -> dict[str, int]:
    """Index one batch (up to BATCH_SIZE items); an item that cannot be indexed is marked
    failed and counted."""
    totals = dict.fromkeys(("processed", "indexed", "unchanged", "changed", "failed", "chunks"), 0)
    embedder = get_embedder()
    for item in knowledge.get_many(batch.workspaceId, batch.ids):
        totals["processed"] += 1
        try:
            outcome = index_item(item, force=batch.force, embedder=embedder)
        except ItemChanged:
            totals["changed"] += 1  # edited meanwhile: due again for the next run
            continue
        except PermanentError as exc:
            # Bad items are counted; other errors fail the batch, which the state machine
            # retries, so a throttled embedding never marks an item failed.
            logger.warning("item cannot be indexed", extra={"item_id": item.id, "error": str(exc)})
            totals["failed"] += 1
            knowledge.mark_indexing_failed(item, str(exc))
            continue
        totals[outcome.status] += 1
        totals["chunks"] += outcome.chunkCount if outcome.status == "indexed" else 0
    return totals


def bulk_index_documents(payload: BulkIndexDocumentsPayload, context: RunContext) -> Detached:
    return start_fanout(
        "STATE_MACHINE_ARN_BULK_INDEX_DOCUMENTS",
        context,
        payload.workspaceId,
        datetime.now(UTC),
        force=payload.force,
    )


def reindex_all_documents(payload: ReindexAllDocumentsPayload, context: RunContext) -> Detached:
    return start_fanout(
        "STATE_MACHINE_ARN_BULK_INDEX_DOCUMENTS",
        context,
        payload.workspaceId,
        datetime.now(UTC),
        force=True,
    )


# --- deletion and search ---------------------------------------------------------------


def remove_deleted_items(keys: Iterable[tuple[str, str]]) -> int:
    """Remove the chunks of deleted items, given (workspaceId, itemId) pairs."""
    embedder = get_embedder()
    index = _index_for(embedder)
    removed = 0
    for workspace_id, item_id in keys:
        index.delete_item(workspace_id, item_id)
        removed += 1
    return removed


def search_knowledge(workspace_id: str, query: str, k: int = 5) -> list[SearchHit]:
    """Hybrid keyword + vector search of one workspace's chunks, best first."""
    if not query.strip():
        raise InvalidInput("query must not be empty")
    embedder = get_embedder()
    [vector] = embedder.embed([query])
    return _index_for(embedder).search(workspace_id, query, vector, k=k)
