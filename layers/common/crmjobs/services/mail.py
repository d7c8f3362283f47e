"""Composing one recipient's message (campaigns and direct emails alike) and sending one
email to one person, at most once per dedupe key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

from crmjobs import config
from crmjobs.adapters.mailer import (
    Mailer,
    OutgoingEmail,
    RecipientRejected,
    SendingStopped,
    SendOutcomeUnknown,
    SendRetryable,
    mailer_from_config,
)
from crmjobs.adapters.signing_key import unsubscribe_key
from crmjobs.domain.audience import is_valid_address
from crmjobs.domain.campaigns import RecipientStatus
from crmjobs.domain.rendering import (
    DIRECT_CAMPAIGN,
    RecipientFields,
    Unsubscribe,
    build_message,
    message_tags,
)
from crmjobs.domain.unsubscribe_token import UnsubscribeClaim, sign
from crmjobs.errors import Conflict
from crmjobs.models import Delivery
from crmjobs.models.base import utcnow
from crmjobs.stores import deliveries, people, suppressions


@dataclass(frozen=True)
class Sender:
    """Who mails and where recipients unsubscribe (the template's settings)."""

    address: str
    unsubscribe_url: str
    unsubscribe_mailbox: str
    key: bytes

    @classmethod
    def from_config(cls) -> Sender:
        address = config.require("SES_SENDER")
        domain = address.rpartition("@")[2]
        return cls(
            address=address,
            unsubscribe_url=config.require("UNSUBSCRIBE_URL"),
            unsubscribe_mailbox=config.env("UNSUBSCRIBE_MAILBOX") or f"unsubscribe@{domain}",
            key=unsubscribe_key(),
        )

    def unsubscribe_for(self, claim: UnsubscribeClaim) -> Unsubscribe:
        token = sign(claim, self.key)
        return Unsubscribe(
            f"{self.unsubscribe_url}?{urlencode({'token': token})}", self.unsubscribe_mailbox
        )


def compose(
    sender: Sender,
    *,
    workspace_id: str,
    campaign_id: str,
    recipient: str,
    fields: RecipientFields,
    subject: str,
    body: str,
    now: datetime,
    dedupe_key: str | None = None,
) -> OutgoingEmail:
    """The complete message for one recipient (`recipient` is "prospect:<id>" or
    "contact:<id>"), with its unsubscribe link and SES tags (a direct email's carry its
    dedupe key)."""
    recipient_type, _, recipient_id = recipient.partition(":")
    claim = UnsubscribeClaim(workspace_id, campaign_id, recipient_type, recipient_id, fields.email)
    message = build_message(
        sender=sender.address,
        to=fields.email,
        subject=subject,
        body=body,
        fields=fields,
        unsubscribe=sender.unsubscribe_for(claim),
        now=now,
    )
    return OutgoingEmail(
        sender=sender.address,
        to=fields.email,
        raw_mime=message.as_bytes(),
        tags=message_tags(workspace_id, campaign_id, fields.email, dedupe_key),
    )


def fields_of(row: Delivery) -> RecipientFields:
    return RecipientFields(
        name=row.name or "there",
        first_name=row.first_name or "",
        last_name=row.last_name or "",
        company=row.company or "",
        title=row.title or "",
        email=row.email,
    )


# --------------------------------------------------------------------------- direct email


@dataclass(frozen=True)
class DirectEmailResult:
    status: Literal["sent", "skipped"]
    reason: str | None = None
    message_id: str | None = None


def _earlier(row: Delivery) -> DirectEmailResult | None:
    """What an earlier call with the same dedupe key did, or None to send now."""
    if row.status == RecipientStatus.SENT:
        return DirectEmailResult("sent", None, row.message_id)
    if row.status == RecipientStatus.FAILED:
        return DirectEmailResult("skipped", f"failed: {row.error}", None)
    if row.status in (RecipientStatus.SENDING, RecipientStatus.UNCONFIRMED):
        return DirectEmailResult("skipped", "unconfirmed: an earlier send's outcome is unknown")
    return None


def send_direct_email(
    workspace_id: str,
    *,
    recipient_type: Literal["prospect", "contact"],
    recipient_id: str,
    subject: str,
    body: str,
    dedupe_key: str,
    sent_by: str,
    mailer: Mailer | None = None,
) -> DirectEmailResult:
    """Send one email to a prospect or contact of the workspace (NotFound otherwise).

    Opted-out, suppressed or address-less recipients are skipped. The delivery row is
    written (sending) before the SES call, so one dedupe key mails at most once: a repeat
    returns the first outcome. A throttle or a stopped account leaves the row pending and
    raises, so a retry with the same key sends. `sent_by` names who sent it (an agent)."""
    person = people.get(workspace_id, recipient_type, recipient_id)
    if not person.email.strip():
        return DirectEmailResult("skipped", "no email")
    if person.opted_out:
        return DirectEmailResult("skipped", "opted out")
    address = person.address
    if not is_valid_address(address):
        return DirectEmailResult("skipped", "invalid address")
    if suppressions.is_suppressed(workspace_id, address):
        return DirectEmailResult("skipped", "suppressed")
    key = deliveries.direct_key(workspace_id, dedupe_key)
    row = Delivery(
        key,
        address,
        workspace_id=workspace_id,
        campaign_id=DIRECT_CAMPAIGN,
        **deliveries.recipient_fields(person),
        status=RecipientStatus.SENDING.value,
        claimed_at=utcnow(),
        sent_by=sent_by,
    )
    try:
        deliveries.create_claimed(row)
    except Conflict:
        existing = deliveries.find_direct(key)
        earlier = _earlier(existing) if existing is not None else None
        if earlier is not None:
            return earlier
        if existing is None or not deliveries.claim([existing], utcnow()):
            return DirectEmailResult("skipped", "another send of this key is in progress")
        row = existing
    mailer = mailer or mailer_from_config()
    outgoing = compose(
        Sender.from_config(),
        workspace_id=workspace_id,
        campaign_id=DIRECT_CAMPAIGN,
        recipient=person.key,
        fields=fields_of(row),
        subject=subject,
        body=body,
        now=utcnow(),
        dedupe_key=dedupe_key,
    )
    try:
        message_id = mailer.send(outgoing)
    except (SendRetryable, SendingStopped) as exc:
        deliveries.transact([deliveries.released(row, str(exc))])
        raise
    except SendOutcomeUnknown as exc:
        deliveries.transact([deliveries.unconfirmed(row, str(exc))])
        return DirectEmailResult("skipped", "unconfirmed: the send's outcome is unknown")
    except RecipientRejected as exc:
        deliveries.transact([deliveries.failed(row, str(exc))])
        raise
    except Exception as exc:  # unexpected: it may have gone out, so never again
        deliveries.transact([deliveries.unconfirmed(row, f"{type(exc).__name__}: {exc}")])
        raise
    deliveries.transact([deliveries.sent(row, message_id, utcnow())])
    return DirectEmailResult("sent", None, message_id)
