"""send-campaign and schedule-campaign, and the cancelation of a schedule when its campaign
stops being scheduled (the campaigns table's stream)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from crmjobs import client, config, ledger
from crmjobs.adapters import schedules, state_machines
from crmjobs.domain.campaigns import (
    STARTABLE,
    CampaignStatus,
    ContentError,
    FireDecision,
    check_sendable,
    decide_fire,
)
from crmjobs.errors import InvalidInput
from crmjobs.ledger import FINISHED
from crmjobs.models import Campaign
from crmjobs.observability import logger
from crmjobs.runtime import Detached, RunContext, execution_name
from crmjobs.schemas import ScheduleCampaignPayload, SendCampaignPayload
from crmjobs.stores import campaigns

STATE_MACHINE_VARIABLE = "STATE_MACHINE_ARN_SEND_CAMPAIGN"


def _run_of(execution: str) -> str:
    """`<run id>-<attempt>` -> the run id."""
    return execution.rsplit("-", 1)[0]


def _sent_by_a_live_run(campaign: Campaign, run_id: str) -> bool:
    """Another run that has not finished sends the campaign."""
    if campaign.status != CampaignStatus.ACTIVE or not campaign.sending_run:
        return False
    owner = _run_of(campaign.sending_run)
    if owner == run_id:
        return False  # an earlier attempt of this run: this attempt takes over
    run = ledger.get(owner)
    return run is not None and run.status not in FINISHED


def send_campaign(payload: SendCampaignPayload, context: RunContext) -> Detached | dict[str, Any]:
    """Send (or resume sending) a campaign through the sending state machine.

    A completed campaign is never sent again; a schedule's message sends only if the
    campaign is still scheduled for that time; content the campaign cannot be sent with
    sends it back to draft with the error."""
    campaign = campaigns.get(payload.workspaceId, payload.campaignId)
    ours = campaign.status == CampaignStatus.ACTIVE and campaign.sending_run is not None and (
        _run_of(campaign.sending_run) == context.run_id
    )
    if campaign.status == CampaignStatus.COMPLETED:
        return {"status": campaign.status, "skipped": "the campaign was already sent"}
    if payload.scheduledFor is not None and not ours:
        fired_for = payload.scheduledFor.astimezone(UTC)
        if decide_fire(campaign.status, campaign.scheduled_for, fired_for) is FireDecision.STALE:
            logger.info("stale schedule fired; nothing sent", extra={"campaign": campaign.id})
            return {
                "status": campaign.status,
                "skipped": f"the campaign is no longer scheduled for {fired_for.isoformat()}",
            }
    if _sent_by_a_live_run(campaign, context.run_id):
        return {"status": campaign.status, "skipped": f"{campaign.sending_run} is sending it"}
    if campaign.status not in STARTABLE and campaign.status != CampaignStatus.ACTIVE:
        raise InvalidInput(f"a campaign that is {campaign.status} cannot be sent")
    content = campaign.content
    try:
        check_sendable(
            campaign.audience,
            content.subject if content else None,
            content.body if content else None,
        )
    except ContentError as exc:
        campaigns.back_to_draft(campaign, str(exc))
        raise InvalidInput(str(exc)) from None
    execution = execution_name(context.run_id, context.attempt)
    arn = config.require(STATE_MACHINE_VARIABLE)
    for earlier in range(1, context.attempt):  # never two attempts of one run at once
        state_machines.stop_chain(arn, execution_name(context.run_id, earlier), "superseded")
    campaigns.start_sending(campaign, execution)
    try:
        state_machines.start(
            arn,
            execution,
            {
                "runId": context.run_id,
                "execution": execution,
                "workspaceId": campaign.workspace_id,
                "campaignId": campaign.id,
                "audience": campaign.audience,
                "audienceListed": bool(campaign.audience_listed),
            },
        )
    except state_machines.ExecutionExists:
        pass  # a redelivery of this attempt: its execution is under way
    return Detached(execution=execution)


# --------------------------------------------------------------------------- schedules


def schedule_name(workspace_id: str, campaign_id: str) -> str:
    """One schedule per campaign (so rescheduling replaces it); names allow 64 characters."""
    digest = hashlib.sha256(f"{workspace_id}#{campaign_id}".encode()).hexdigest()[:40]
    return f"campaign-{digest}"


def schedule_campaign(payload: ScheduleCampaignPayload, context: RunContext) -> dict[str, Any]:
    """Scheduled for `scheduledFor` with a one-time schedule (replacing an earlier one); a
    time already past sends at once."""
    campaign = campaigns.get(payload.workspaceId, payload.campaignId)
    if campaign.status not in (
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.PAUSED,
    ):
        raise InvalidInput(f"a campaign that is {campaign.status} cannot be scheduled")
    content = campaign.content
    try:
        check_sendable(
            campaign.audience,
            content.subject if content else None,
            content.body if content else None,
        )
    except ContentError as exc:
        campaigns.back_to_draft(campaign, str(exc))
        raise InvalidInput(str(exc)) from None
    at = payload.scheduledFor.astimezone(UTC).replace(microsecond=0)
    name = schedule_name(campaign.workspace_id, campaign.id)
    if campaign.status != CampaignStatus.SCHEDULED or campaign.scheduled_for != at:
        campaigns.mark_scheduled(campaign, at)
    fire = {"workspaceId": campaign.workspace_id, "campaignId": campaign.id,
            "scheduledFor": at.isoformat()}
    schedules.delete(name)
    if at <= datetime.now(UTC):
        run = client.trigger(
            "send-campaign",
            fire,
            idempotency_key=f"schedule:{campaign.id}:{at.isoformat()}",
            tags=["scheduled"],
        )
        return {"status": "scheduled", "scheduledFor": at.isoformat(), "sendRun": run.id}
    schedules.create_one_time(name, at, "send-campaign", json.dumps(fire))
    return {"status": "scheduled", "scheduledFor": at.isoformat(), "schedule": name}


def cancel_stale_schedules(changes: list[tuple[dict | None, dict | None]]) -> int:
    """For each (old, new) image of a campaign: a campaign no longer scheduled (paused,
    back to draft, sent or deleted) loses its schedule. How many were deleted."""
    deleted = 0
    for old, new in changes:
        if not old or old.get("status") != CampaignStatus.SCHEDULED:
            continue
        if new and new.get("status") == CampaignStatus.SCHEDULED:
            continue
        if schedules.delete(schedule_name(old["workspaceId"], old["id"])):
            deleted += 1
    return deleted
