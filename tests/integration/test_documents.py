"""Document indexing on the real path with the local embedder and vector index:
statuses, idempotent re-index, stale chunks, deletion via the table stream, bad items,
bulk fan-out through the state machine, and workspace isolation of search."""

from __future__ import annotations

import pytest

from crmjobs import client
from crmjobs.adapters.embeddings import get_embedder
from crmjobs.adapters.vector_index import get_vector_index
from crmjobs.models import KnowledgeItem, Workspace
from crmjobs.services.documents import search_knowledge

PRICING = (
    "Acme Robotics sells warehouse robots on a subscription. The starter plan costs 900 dollars "
    "a month per robot and includes maintenance. Enterprise customers get volume discounts and "
    "a dedicated success manager. Annual contracts are billed up front."
)
SECURITY = (
    "All robot telemetry is encrypted in transit with TLS 1.3 and at rest with AES-256. "
    "We are SOC 2 Type II certified. Customer data never leaves the chosen AWS region."
)


def _item(workspace_id: str, item_id: str, content: str, title: str = "Doc") -> KnowledgeItem:
    item = KnowledgeItem(workspace_id=workspace_id, id=item_id, title=title, content=content)
    item.save()
    return item


def _index(stack, workspace_id: str, item_id: str):
    run = client.trigger("index-document", {"workspaceId": workspace_id, "itemId": item_id})
    stack.source_for_task("index-document").poll_once()
    return client.retrieve(run.id)


def _chunks(workspace_id: str) -> int:
    return get_vector_index(get_embedder().dimension).count(workspace_id)


def test_index_document_marks_ready_and_search_finds_it(stack, workspace):
    _item(workspace.id, "pricing", PRICING, "Pricing")
    _item(workspace.id, "security", SECURITY, "Security")
    for item_id in ("pricing", "security"):
        assert _index(stack, workspace.id, item_id).status == "COMPLETED"
    item = KnowledgeItem.get(workspace.id, "pricing")
    assert item.status == "ready" and item.chunk_count == 1
    assert item.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert item.indexed_at is not None and len(item.content_hash) == 64
    [top, *_] = search_knowledge(workspace.id, "how much does a robot cost per month?")
    assert top.item_id == "pricing" and top.title == "Pricing" and "900 dollars" in top.chunk
    assert search_knowledge(workspace.id, "is my data encrypted?")[0].item_id == "security"


def test_reindex_is_idempotent_and_leaves_no_stale_chunks(stack, workspace):
    long_text = " ".join(f"Sentence number {n} talks about robots and safety." for n in range(60))
    _item(workspace.id, "manual", long_text)
    first = _index(stack, workspace.id, "manual")
    chunks = KnowledgeItem.get(workspace.id, "manual").chunk_count
    assert first.output["status"] == "indexed" and chunks > 3 and _chunks(workspace.id) == chunks
    assert _index(stack, workspace.id, "manual").output["status"] == "unchanged"

    _item(workspace.id, "manual", "A much shorter manual. It has two sentences.")
    shorter = _index(stack, workspace.id, "manual")
    assert shorter.output == {**shorter.output, "status": "indexed", "chunkCount": 1}
    assert _chunks(workspace.id) == 1


def test_empty_and_missing_items_fail_without_retry(stack, workspace):
    _item(workspace.id, "blank", "   \n  ")
    run = _index(stack, workspace.id, "blank")
    assert run.status == "FAILED" and run.attempts == 1
    assert run.error["message"] == "no content to index"
    blank = KnowledgeItem.get(workspace.id, "blank")
    assert blank.status == "failed" and blank.processing_error == "no content to index"
    missing = _index(stack, workspace.id, "nope")
    assert missing.status == "FAILED" and missing.error["message"] == "knowledge item not found"


def test_deleted_item_leaves_the_index_through_the_stream(stack, workspace):
    _item(workspace.id, "gone", PRICING)
    _index(stack, workspace.id, "gone")
    assert _chunks(workspace.id) == 1
    KnowledgeItem.get(workspace.id, "gone").delete()
    for stream in stack.streams:
        stream.poll_once()
    assert _chunks(workspace.id) == 0


def test_search_never_returns_another_workspaces_chunks(stack, workspace):
    other = Workspace(id=f"{workspace.id}-rival", name="Rival")
    other.save()
    _item(other.id, "pricing", PRICING, "Rival pricing")
    _index(stack, other.id, "pricing")
    _item(workspace.id, "security", SECURITY, "Security")
    _index(stack, workspace.id, "security")
    hits = search_knowledge(workspace.id, "how much does a robot cost per month?", k=10)
    assert hits and {hit.item_id for hit in hits} == {"security"}


@pytest.mark.slow
def test_bulk_index_fans_out_and_force_reindexes(stack, workspace):
    for n in range(12):
        _item(workspace.id, f"doc-{n:02d}", f"Document {n}. " + SECURITY)
    _item(workspace.id, "empty", "")
    run = client.trigger("bulk-index-documents", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-index-documents").poll_once()
    done = client.wait(run.id, timeout=300)
    assert done.status == "COMPLETED", done.error
    assert done.output == {
        "processed": 13,
        "indexed": 12,
        "unchanged": 0,
        "changed": 0,
        "failed": 1,
        "chunks": 12,
        "pages": 1,
        "listed": 13,
    }
    assert KnowledgeItem.get(workspace.id, "empty").status == "failed"

    again = client.trigger("bulk-index-documents", {"workspaceId": workspace.id})
    stack.source_for_task("bulk-index-documents").poll_once()
    assert client.wait(again.id, timeout=120).output["processed"] == 1  # only the failed one is due

    full = client.trigger("reindex-all-documents", {"workspaceId": workspace.id})
    stack.source_for_task("reindex-all-documents").poll_once()
    output = client.wait(full.id, timeout=300).output
    assert output["indexed"] == 12 and output["failed"] == 1
    assert _chunks(workspace.id) == 12
