"""Campaigns, their per-recipient ledger (the deliveries table) and the workspaces'
suppression lists.

Campaigns are written by the CRM app too: their timestamps and numbers are read in the
forms other apps write (models/base.py), a campaign read whole must have its required
fields, and createdAt/updatedAt are set on new records only.
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, MapAttribute, UnicodeAttribute
from pynamodb.models import Model

from crmjobs.models.base import Number, Timestamp, WorkspaceScoped, table_meta, utcnow


class CampaignContent(MapAttribute):
    subject = UnicodeAttribute(null=True)
    body = UnicodeAttribute(null=True)


class Campaign(WorkspaceScoped):
    Meta = table_meta("CAMPAIGNS_TABLE")
    complete_on_get = True

    name = UnicodeAttribute()
    type = UnicodeAttribute(default="email")
    status = UnicodeAttribute(default="draft")
    audience = UnicodeAttribute(null=True)
    content = CampaignContent(null=True)
    scheduled_for = Timestamp(null=True, attr_name="scheduledFor")
    #: recipients, pending, sent, failed, unconfirmed (recounted from the ledger),
    #: excluded {optedOut, suppressed, duplicate, invalid}, and the feedback counters
    #: (delivered, bounced, complained, opened, clicked, rejected, unsubscribed).
    counters = MapAttribute(null=True)
    last_error = UnicodeAttribute(null=True, attr_name="lastError")
    #: The send-campaign run sending it now (one at a time).
    sending_run = UnicodeAttribute(null=True, attr_name="sendingRun")
    #: Every audience page is in the ledger: a resume sends the pending recipients only.
    audience_listed = BooleanAttribute(null=True, attr_name="audienceListed")
    created_by = UnicodeAttribute(null=True, attr_name="createdBy")
    created_at = Timestamp(null=True, default_for_new=utcnow, attr_name="createdAt")
    updated_at = Timestamp(null=True, default_for_new=utcnow, attr_name="updatedAt")


class AudienceEntry(Model):
    """One recipient of one campaign as its audience was listed, keyed
    (audience:workspaceId#campaignId, address): the fields its message names. Written in
    batches (BatchWriteItem, unconditional), so it never holds a send's state: that is the
    recipient's Delivery row, created when its send is claimed. The key's prefix, which no
    workspace id can start with, is what the listing step's write permission is scoped to."""

    Meta = table_meta("DELIVERIES_TABLE")

    audience_key = UnicodeAttribute(hash_key=True, attr_name="campaignKey")
    email = UnicodeAttribute(range_key=True)
    #: The record the address came from, "prospect:<id>" or "contact:<id>".
    recipient = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True, attr_name="firstName")
    last_name = UnicodeAttribute(null=True, attr_name="lastName")
    company = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)

    PREFIX = "audience:"

    @staticmethod
    def key_for(workspace_id: str, campaign_id: str) -> str:
        return f"{AudienceEntry.PREFIX}{workspace_id}#{campaign_id}"


class Delivery(Model):
    """One recipient's send of one campaign (the ledger), keyed (workspaceId#campaignId,
    address), written from its claim on; direct emails use the key
    (workspaceId#direct#dedupeKey, address)."""

    Meta = table_meta("DELIVERIES_TABLE")

    campaign_key = UnicodeAttribute(hash_key=True, attr_name="campaignKey")
    email = UnicodeAttribute(range_key=True)
    workspace_id = UnicodeAttribute(attr_name="workspaceId")
    campaign_id = UnicodeAttribute(null=True, attr_name="campaignId")
    #: The record the address came from, "prospect:<id>" or "contact:<id>".
    recipient = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True, attr_name="firstName")
    last_name = UnicodeAttribute(null=True, attr_name="lastName")
    company = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)
    #: Who sent a direct email (an agent); campaigns leave it empty.
    sent_by = UnicodeAttribute(null=True, attr_name="sentBy")
    #: pending -> sending -> sent | failed | unconfirmed
    status = UnicodeAttribute(default="pending")
    message_id = UnicodeAttribute(null=True, attr_name="messageId")
    error = UnicodeAttribute(null=True)
    claimed_at = Timestamp(null=True, attr_name="claimedAt")
    sent_at = Timestamp(null=True, attr_name="sentAt")
    delivered_at = Timestamp(null=True, attr_name="deliveredAt")
    bounced_at = Timestamp(null=True, attr_name="bouncedAt")
    bounce_type = UnicodeAttribute(null=True, attr_name="bounceType")
    complained_at = Timestamp(null=True, attr_name="complainedAt")
    opened_at = Timestamp(null=True, attr_name="openedAt")
    clicked_at = Timestamp(null=True, attr_name="clickedAt")
    rejected_at = Timestamp(null=True, attr_name="rejectedAt")
    unsubscribed_at = Timestamp(null=True, attr_name="unsubscribedAt")

    @staticmethod
    def key_for(workspace_id: str, campaign_id: str) -> str:
        return f"{workspace_id}#{campaign_id}"


class Suppression(Model):
    """An address a workspace must not mail (permanent bounce, complaint, unsubscribe)."""

    Meta = table_meta("SUPPRESSIONS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    email = UnicodeAttribute(range_key=True)
    reason = UnicodeAttribute(default="bounce")
    created_at = Timestamp(default=utcnow, attr_name="createdAt")


class SendSchedule(Model):
    """The account's shared send schedule (domain/pacing.py): the next free send slot, in
    epoch seconds. One item, kept in the campaigns table under the system workspace (real
    workspace ids never start with "_")."""

    Meta = table_meta("CAMPAIGNS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    next_free = Number(null=True, attr_name="nextFree")
