"""Prospects: read one or a batch in a workspace, list a page of scoring states, write a
score only over the version that was read.

A prospect with a stored value that cannot be read (models/base.py) fails on its own: `get`
raises MalformedRecord; a batch or a page returns it flagged (unreadable_fields), and
`facts_of` raises for it, so a bulk step counts that one prospect failed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from crmjobs.domain.scoring import ProspectFacts, ScoreResult
from crmjobs.errors import NotFound
from crmjobs.models import Prospect
from crmjobs.models.base import check_readable, flag_unreadable
from crmjobs.stores.dynamodb import Page, conflict_on_failed_condition, query_page

#: What a page of scoring states reads: the keys too (PynamoDB rebuilds a cursor from the
#: last item when a page stops) and the timestamps that decide whether a score is due.
_SCORING_STATE = ["workspaceId", "id", "scoredAt", "updatedAt", "scoreRulesVersion"]


def get(workspace_id: str, prospect_id: str) -> Prospect:
    """The prospect as it is now (a consistent read); NotFound outside its workspace."""
    prospect = Prospect.get_in_workspace(workspace_id, prospect_id, consistent_read=True)
    if prospect is None:
        raise NotFound("prospect not found")
    check_readable(prospect, required=True)
    return prospect


def get_many(workspace_id: str, prospect_ids: Iterable[str]) -> list[Prospect]:
    """The workspace's prospects among these ids (up to 100: one BatchGetItem); missing
    ones are left out, unreadable ones flagged."""
    with flag_unreadable():
        return list(Prospect.batch_get([(workspace_id, pid) for pid in prospect_ids]))


def scoring_states(workspace_id: str, cursor: dict[str, Any] | None, limit: int) -> Page[Prospect]:
    """Up to `limit` prospects of the workspace with only their keys and scoring timestamps."""
    with flag_unreadable():
        return query_page(
            Prospect.query, workspace_id, cursor, limit, attributes_to_get=_SCORING_STATE
        )


def facts_of(prospect: Prospect) -> ProspectFacts:
    """The fields scoring reads; MalformedRecord for a prospect that cannot be scored as
    stored (a value that cannot be read, a required one missing)."""
    check_readable(prospect, required=True)
    return ProspectFacts(
        email=prospect.email,
        phone=prospect.phone,
        company=prospect.company,
        title=prospect.title,
        stage=prospect.stage or "new",
        estimated_value=None if prospect.estimated_value is None else int(prospect.estimated_value),
        last_contacted_at=prospect.last_contacted_at,
    )


def stored_score(prospect: Prospect) -> tuple[int | None, dict[str, int] | None, int | None]:
    """(total, breakdown, rules version) as stored on the prospect."""
    breakdown = prospect.score_breakdown.as_dict() if prospect.score_breakdown else None
    total = None if prospect.score is None else int(prospect.score)
    version = None if prospect.score_rules_version is None else int(prospect.score_rules_version)
    return total, breakdown, version


def write_score(prospect: Prospect, result: ScoreResult, scored_at: datetime) -> None:
    """Store the score, conditional on the prospect being the one read (its version, which
    PynamoDB checks, and its updatedAt for writers that skip the version); Conflict when it
    was edited or deleted meanwhile."""
    with conflict_on_failed_condition(f"prospect {prospect.id} changed since it was read"):
        prospect.update(
            condition=prospect.unchanged_since_read(),
            actions=[
                Prospect.score.set(result.total),
                Prospect.score_breakdown.set(result.breakdown_dict()),
                Prospect.scored_at.set(scored_at),
                Prospect.score_rules_version.set(result.rules_version),
            ],
        )
