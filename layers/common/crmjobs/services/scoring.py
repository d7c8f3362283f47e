"""Lead scoring services: score one prospect, page a workspace, score a batch (the nightly
job that starts bulk runs is in services/nightly_scoring.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crmjobs.domain.scoring import is_stored_score, needs_scoring, score_prospect
from crmjobs.errors import Conflict
from crmjobs.models import Prospect
from crmjobs.models.base import unreadable_fields
from crmjobs.observability import logger
from crmjobs.runtime import Detached, RunContext
from crmjobs.schemas import BulkScoreLeadsPayload, ScoreLeadPayload
from crmjobs.services.fanout import PAGE_SIZE, BatchInput, PageState, Step, next_page, start_fanout
from crmjobs.stores import prospects

#: Prospects per scoring batch (DynamoDB BatchGetItem's maximum).
BATCH_SIZE = 100
#: A bulk run also rescores scores that turn 24 h old within this window, so a nightly run
#: a few seconds earlier than yesterday's does not leave them for another day.
STALENESS_SLACK = timedelta(hours=1)
MAX_CONFLICT_RETRIES = 5


class ScoreOutcome(Step):
    prospectId: str
    score: int
    breakdown: dict[str, int]
    rulesVersion: int
    changed: bool


def score_and_store(prospect: Prospect, now: datetime) -> ScoreOutcome:
    """Score and write, conditional on the prospect being unchanged since it was read; on
    a conflict re-read and re-score. An unchanged score is not rewritten."""
    for _ in range(MAX_CONFLICT_RETRIES):
        result = score_prospect(prospects.facts_of(prospect), now)
        total, breakdown, rules_version = prospects.stored_score(prospect)
        outcome = ScoreOutcome(
            prospectId=prospect.id,
            score=result.total,
            breakdown=result.breakdown_dict(),
            rulesVersion=result.rules_version,
            changed=not is_stored_score(
                result, total=total, breakdown=breakdown, rules_version=rules_version
            ),
        )
        if not outcome.changed:
            return outcome
        try:
            prospects.write_score(prospect, result, now)
            return outcome
        except Conflict:
            prospect = prospects.get(prospect.workspace_id, prospect.id)  # NotFound if deleted
    raise RuntimeError(f"prospect {prospect.id} kept changing while being scored")


def score_lead(payload: ScoreLeadPayload, context: RunContext) -> ScoreOutcome:
    prospect = prospects.get(payload.workspaceId, payload.prospectId)
    return score_and_store(prospect, datetime.now(UTC))


# --- bulk scoring: the state machine's steps -------------------------------------------


def _list_due_prospects(state: PageState) -> tuple[list[str], int, dict[str, Any] | None]:
    """One page of the workspace's prospects (keys and timestamps only); those due (and
    those whose timestamps cannot be read: their batch fails them, naming the field)."""
    page = prospects.scoring_states(state.workspaceId, state.cursor, PAGE_SIZE)
    horizon = state.now + STALENESS_SLACK
    due = [
        prospect.id
        for prospect in page.items
        if unreadable_fields(prospect)
        or needs_scoring(
            scored_at=prospect.scored_at,
            updated_at=prospect.updated_at,
            rules_version=prospect.score_rules_version,
            now=horizon,
        )
    ]
    return due, len(page.items), page.cursor


def list_prospects_page(state: PageState) -> PageState:
    return next_page(state, _list_due_prospects, BATCH_SIZE)


def score_prospects_batch(batch: BatchInput) -> dict[str, int]:
    """Score up to 100 prospects read with one BatchGetItem; a prospect that fails is
    counted and logged, and does not fail its neighbours."""
    totals = dict.fromkeys(("processed", "changed", "unchanged", "failed"), 0)
    for prospect in prospects.get_many(batch.workspaceId, batch.ids):
        totals["processed"] += 1
        try:
            outcome = score_and_store(prospect, batch.now)
        except Exception:
            logger.exception("prospect scoring failed", extra={"prospect_id": prospect.id})
            totals["failed"] += 1
            continue
        totals["changed" if outcome.changed else "unchanged"] += 1
    return totals


def bulk_score_leads(payload: BulkScoreLeadsPayload, context: RunContext) -> Detached:
    return start_fanout(
        "STATE_MACHINE_ARN_BULK_SCORE_LEADS", context, payload.workspaceId, datetime.now(UTC)
    )
