"""The pure rules that decide whether a knowledge item needs indexing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmjobs.domain.indexing import is_indexed, may_need_indexing

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INDEXED = {"status": "ready", "stored_hash": "h1", "stored_model": "m1"}


def test_indexed_only_with_the_same_content_and_model():
    assert is_indexed(**INDEXED, digest="h1", model_id="m1")
    assert not is_indexed(**INDEXED, digest="h2", model_id="m1")
    assert not is_indexed(**INDEXED, digest="h1", model_id="m2")
    assert not is_indexed(**{**INDEXED, "status": "failed"}, digest="h1", model_id="m1")


def _may_need(**changes) -> bool:
    fields = {
        "status": "ready",
        "indexed_at": NOW,
        "updated_at": NOW - timedelta(minutes=1),
        "stored_model": "m1",
        "model_id": "m1",
    }
    return may_need_indexing(**{**fields, **changes})


def test_an_item_indexed_after_its_last_edit_by_this_model_is_not_due():
    assert not _may_need()
    assert not _may_need(updated_at=None)


def test_never_indexed_edited_since_failed_or_another_model_is_due():
    assert _may_need(indexed_at=None)
    assert _may_need(updated_at=NOW + timedelta(seconds=1))
    assert _may_need(status="failed")
    assert _may_need(status="processing")
    assert _may_need(stored_model="m0")
