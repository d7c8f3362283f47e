"""The entity stores: reads scoped by workspace (NotFound outside it), writes over the
record as read (Conflict when it changed), and the workspace tier's short cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmjobs.domain.scoring import ProspectFacts, score_prospect
from crmjobs.errors import Conflict, NotFound
from crmjobs.models import KnowledgeItem, Prospect, Workspace
from crmjobs.stores import knowledge, prospects, workspaces


def test_a_prospect_is_found_only_in_its_workspace(stack, workspace):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    assert prospects.get(workspace.id, "p-1").name == "Ada"
    with pytest.raises(NotFound, match="prospect not found"):
        prospects.get(f"{workspace.id}-other", "p-1")
    assert [p.id for p in prospects.get_many(workspace.id, ["p-1", "p-missing"])] == ["p-1"]
    assert list(prospects.get_many(f"{workspace.id}-other", ["p-1"])) == []


def test_a_score_written_over_an_edit_is_a_conflict(stack, workspace):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada").save()
    read = prospects.get(workspace.id, "p-1")
    edited = prospects.get(workspace.id, "p-1")
    edited.stage = "won"
    edited.save()
    now = datetime.now(UTC)
    result = score_prospect(prospects.facts_of(read), now)
    with pytest.raises(Conflict):
        prospects.write_score(read, result, now)
    assert Prospect.get(workspace.id, "p-1").score is None
    fresh = prospects.get(workspace.id, "p-1")
    prospects.write_score(fresh, score_prospect(ProspectFacts(stage="won"), now), now)
    assert prospects.stored_score(prospects.get(workspace.id, "p-1"))[0] == result.total + 50


def test_a_scoring_page_carries_the_cursor_of_the_next(stack, workspace):
    for n in range(3):
        Prospect(workspace_id=workspace.id, id=f"p-{n}", name=f"P{n}").save()
    first = prospects.scoring_states(workspace.id, None, 2)
    assert [p.id for p in first.items] == ["p-0", "p-1"] and first.cursor is not None
    second = prospects.scoring_states(workspace.id, first.cursor, 2)
    assert [p.id for p in second.items] == ["p-2"]
    assert second.cursor is None


def test_knowledge_status_writes_respect_edits_and_deletions(stack, workspace):
    item = KnowledgeItem(workspace_id=workspace.id, id="k-1", title="Pricing", content="x")
    item.save()
    read = knowledge.get(workspace.id, "k-1")
    KnowledgeItem.get(workspace.id, "k-1").update(  # the app edits it, as it does: updatedAt
        actions=[KnowledgeItem.title.set("New"), KnowledgeItem.updated_at.set(datetime.now(UTC))]
    )
    assert knowledge.mark_indexing_failed(read, "boom") is False  # edited since: left alone
    fresh = knowledge.get(workspace.id, "k-1")
    assert knowledge.mark_indexing_failed(fresh, "boom") is True
    assert knowledge.get(workspace.id, "k-1").processing_error == "boom"
    KnowledgeItem.get(workspace.id, "k-1").delete()
    assert knowledge.find(workspace.id, "k-1") is None
    with pytest.raises(NotFound):
        knowledge.mark_processing(fresh)
    with pytest.raises(Conflict):
        knowledge.mark_ready(
            fresh, chunk_count=1, indexed_at=datetime.now(UTC), digest="d", model_id="m"
        )


def test_a_workspace_tier_is_cached_briefly(stack, workspace, monkeypatch):
    free = Workspace(id=f"{workspace.id}-tier", name="Tier", subscription_tier="free")
    free.save()
    assert workspaces.concurrency_limit(free.id) == 1
    free.subscription_tier = "enterprise"
    free.save()
    assert workspaces.concurrency_limit(free.id) == 1  # the cached answer
    later = workspaces.time.monotonic() + workspaces.TIER_CACHE_SECONDS + 1
    monkeypatch.setattr(workspaces.time, "monotonic", lambda: later)
    assert workspaces.concurrency_limit(free.id) == 20
    with pytest.raises(NotFound):
        workspaces.concurrency_limit(f"{workspace.id}-missing")
