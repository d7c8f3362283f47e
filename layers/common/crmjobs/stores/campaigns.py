"""Campaigns: read one in a workspace, and the status and counter writes of sending and
scheduling, each conditional on the state the writer decided from (Conflict otherwise)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pynamodb.exceptions import UpdateError

from crmjobs.domain.campaigns import CampaignStatus, empty_counters
from crmjobs.errors import Conflict, NotFound
from crmjobs.models import Campaign
from crmjobs.models.base import utcnow
from crmjobs.stores.dynamodb import CONDITION_FAILED, conflict_on_failed_condition

ACTIVE = CampaignStatus.ACTIVE.value


def find(workspace_id: str, campaign_id: str) -> Campaign | None:
    return Campaign.get_in_workspace(workspace_id, campaign_id, consistent_read=True)


def get(workspace_id: str, campaign_id: str) -> Campaign:
    """The campaign as it is now (a consistent read); NotFound outside its workspace."""
    campaign = find(workspace_id, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def _as_read(campaign: Campaign):
    """The campaign still has the status, sending run and schedule it was read with."""
    condition = Campaign.id.exists() & (Campaign.status == campaign.status)
    condition &= (
        Campaign.sending_run.does_not_exist()
        if campaign.sending_run is None
        else Campaign.sending_run == campaign.sending_run
    )
    condition &= (
        Campaign.scheduled_for.does_not_exist()
        if campaign.scheduled_for is None
        else Campaign.scheduled_for == campaign.scheduled_for
    )
    return condition


def _sending(run_id: str):
    return (Campaign.status == ACTIVE) & (Campaign.sending_run == run_id)


def start_sending(campaign: Campaign, run_id: str) -> None:
    """active, sent by this run; Conflict when the campaign changed since it was read."""
    with conflict_on_failed_condition(f"campaign {campaign.id} changed; not started"):
        campaign.update(
            actions=[
                Campaign.status.set(ACTIVE),
                Campaign.sending_run.set(run_id),
                Campaign.last_error.remove(),
                Campaign.counters.set(Campaign.counters | empty_counters()),
                Campaign.updated_at.set(utcnow()),
            ],
            condition=_as_read(campaign),
        )


def back_to_draft(campaign: Campaign, error: str) -> bool:
    """draft with the error (content or audience the campaign cannot be sent with)."""
    try:
        with conflict_on_failed_condition("campaign changed"):
            campaign.update(
                actions=[
                    Campaign.status.set(CampaignStatus.DRAFT.value),
                    Campaign.last_error.set(error[:2000]),
                    Campaign.sending_run.remove(),
                    Campaign.updated_at.set(utcnow()),
                ],
                condition=_as_read(campaign),
            )
    except Conflict:
        return False
    return True


def _update_while_sending(
    workspace_id: str, campaign_id: str, run_id: str, actions: list, *, active: bool = True
) -> bool:
    """An update that holds only while this run (an execution's name) owns the campaign,
    and, if `active`, while it is still active; False otherwise."""
    condition = _sending(run_id) if active else Campaign.sending_run == run_id
    try:
        Campaign(workspace_id, campaign_id).update(actions=actions, condition=condition)
    except UpdateError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            return False
        raise
    return True


def record_audience(
    workspace_id: str, campaign_id: str, run_id: str, excluded: Mapping[str, int]
) -> bool:
    """Every audience page is in the ledger, with these exclusion counts."""
    return _update_while_sending(
        workspace_id,
        campaign_id,
        run_id,
        [
            Campaign.counters["excluded"].set(dict(excluded)),
            Campaign.audience_listed.set(True),
        ],
    )


def add_counters(workspace_id: str, campaign_id: str, deltas: Mapping[str, int]) -> None:
    """Atomic increments of counters (ADD), e.g. a chunk's sends or one SES event."""
    actions = [Campaign.counters[name].add(value) for name, value in deltas.items() if value]
    if actions:
        Campaign(workspace_id, campaign_id).update(
            actions=actions, condition=Campaign.id.exists()
        )


def set_ledger_counters(
    workspace_id: str, campaign_id: str, run_id: str, counters: Mapping[str, int]
) -> bool:
    """The counters recounted from the ledger (while no batch of this run is in flight),
    also when the campaign was paused meanwhile."""
    return _update_while_sending(
        workspace_id,
        campaign_id,
        run_id,
        [Campaign.counters[name].set(value) for name, value in counters.items()],
        active=False,
    )


def finish_sending(
    workspace_id: str,
    campaign_id: str,
    run_id: str,
    status: CampaignStatus,
    error: str | None = None,
) -> bool:
    """The run's sending ends with this status; False when the campaign is no longer this
    run's to finish (paused, deleted or taken over meanwhile)."""
    actions = [
        Campaign.status.set(status.value),
        Campaign.sending_run.remove(),
        Campaign.updated_at.set(utcnow()),
        Campaign.last_error.set(error[:2000]) if error else Campaign.last_error.remove(),
    ]
    return _update_while_sending(workspace_id, campaign_id, run_id, actions)


def pause(workspace_id: str, campaign_id: str, run_id: str, reason: str) -> bool:
    """Paused with the reason (SES stopped sending); the run keeps the campaign until its
    last step recounts and releases it. False if the run no longer sends it."""
    return _update_while_sending(
        workspace_id,
        campaign_id,
        run_id,
        [
            Campaign.status.set(CampaignStatus.PAUSED.value),
            Campaign.last_error.set(reason[:2000]),
            Campaign.updated_at.set(utcnow()),
        ],
    )


def release(workspace_id: str, campaign_id: str, run_id: str) -> bool:
    """The run no longer sends the campaign (it stays as it is: paused, draft...)."""
    return _update_while_sending(
        workspace_id, campaign_id, run_id, [Campaign.sending_run.remove()], active=False
    )


def sending_state(workspace_id: str, campaign_id: str) -> tuple[str | None, str | None]:
    """(status, sending run) as they are now; (None, None) when the campaign is gone."""
    campaign = Campaign.get_in_workspace(
        workspace_id,
        campaign_id,
        consistent_read=True,
        attributes_to_get=["status", "sendingRun"],
    )
    return (None, None) if campaign is None else (campaign.status, campaign.sending_run)


def mark_scheduled(campaign: Campaign, at: datetime) -> None:
    """scheduled for `at`; Conflict when the campaign changed since it was read."""
    with conflict_on_failed_condition(f"campaign {campaign.id} changed; not scheduled"):
        campaign.update(
            actions=[
                Campaign.status.set(CampaignStatus.SCHEDULED.value),
                Campaign.scheduled_for.set(at),
                Campaign.last_error.remove(),
                Campaign.updated_at.set(utcnow()),
            ],
            condition=_as_read(campaign),
        )
