"""Lead scoring services: score one prospect, page a workspace, score a batch (the nightly
job that starts bulk runs is in services/nightly_scoring.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import UpdateError

from crmjobs.domain.scoring import ProspectFacts, ScoreResult, needs_scoring, score_prospect
from crmjobs.errors import NotFound
from crmjobs.models import Prospect
from crmjobs.observability import logger
from crmjobs.runtime import Detached, RunContext
from crmjobs.schemas import BulkScoreLeadsPayload, ScoreLeadPayload
from crmjobs.services.fanout import PAGE_SIZE, BatchInput, PageState, Step, next_page, start_fanout

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


def facts_of(prospect: Prospect) -> ProspectFacts:
    return ProspectFacts(
        email=prospect.email,
        phone=prospect.phone,
        company=prospect.company,
        title=prospect.title,
        stage=prospect.stage or "new",
        estimated_value=None if prospect.estimated_value is None else int(prospect.estimated_value),
        last_contacted_at=prospect.last_contacted_at,
    )


def _is_unchanged(prospect: Prospect, result: ScoreResult) -> bool:
    stored = prospect.score_breakdown.as_dict() if prospect.score_breakdown else None
    return (
        prospect.score is not None
        and int(prospect.score) == result.total
        and stored == result.breakdown_dict()
        and prospect.score_rules_version == result.rules_version
    )


def score_and_store(prospect: Prospect, now: datetime) -> ScoreOutcome:
    """Score and write, conditional on the prospect being unchanged since it was read
    (its version); on a conflict re-read and re-score. An unchanged score is not rewritten."""
    for _ in range(MAX_CONFLICT_RETRIES):
        result = score_prospect(facts_of(prospect), now)
        outcome = ScoreOutcome(
            prospectId=prospect.id,
            score=result.total,
            breakdown=result.breakdown_dict(),
            rulesVersion=result.rules_version,
            changed=not _is_unchanged(prospect, result),
        )
        if not outcome.changed:
            return outcome
        try:
            # PynamoDB adds the version check; updatedAt covers writers that skip version.
            prospect.update(
                condition=prospect.unchanged_since_read(),
                actions=[
                    Prospect.score.set(result.total),
                    Prospect.score_breakdown.set(result.breakdown_dict()),
                    Prospect.scored_at.set(now),
                    Prospect.score_rules_version.set(result.rules_version),
                ],
            )
            return outcome
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            fresh = Prospect.get_in_workspace(
                prospect.workspace_id, prospect.id, consistent_read=True
            )
            if fresh is None:
                raise NotFound("prospect not found") from None
            prospect = fresh
    raise RuntimeError(f"prospect {prospect.id} kept changing while being scored")


def score_lead(payload: ScoreLeadPayload, context: RunContext) -> ScoreOutcome:
    prospect = Prospect.get_in_workspace(
        payload.workspaceId, payload.prospectId, consistent_read=True
    )
    if prospect is None:
        raise NotFound("prospect not found")
    return score_and_store(prospect, datetime.now(UTC))


# --- bulk scoring: the state machine's steps -------------------------------------------


def _list_due_prospects(state: PageState) -> tuple[list[str], int, dict[str, Any] | None]:
    """One page of the workspace's prospects (keys and timestamps only); those due."""
    query = Prospect.query(
        state.workspaceId,
        # The keys too: PynamoDB rebuilds a cursor from the last item when a page stops.
        attributes_to_get=["workspaceId", "id", "scoredAt", "updatedAt", "scoreRulesVersion"],
        last_evaluated_key=state.cursor,
        page_size=PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    horizon = state.now + STALENESS_SLACK
    due, listed = [], 0
    for prospect in query:
        listed += 1
        if needs_scoring(
            scored_at=prospect.scored_at,
            updated_at=prospect.updated_at,
            rules_version=prospect.score_rules_version,
            now=horizon,
        ):
            due.append(prospect.id)
    return due, listed, query.last_evaluated_key


def list_prospects_page(state: PageState) -> PageState:
    return next_page(state, _list_due_prospects, BATCH_SIZE)


def score_prospects_batch(batch: BatchInput) -> dict[str, int]:
    """Score up to 100 prospects read with one BatchGetItem; a prospect that fails is
    counted and logged, and does not fail its neighbours."""
    totals = dict.fromkeys(("processed", "changed", "unchanged", "failed"), 0)
    keys = [(batch.workspaceId, prospect_id) for prospect_id in batch.ids]
    for prospect in Prospect.batch_get(keys):
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
