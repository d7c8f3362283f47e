"""SES events (event publishing through the configuration set) read into what the feedback
function records: which workspace, campaign and recipient a message was for (its tags,
never an address alone), which flag of the recipient's row it sets, and whether the
address must be suppressed (a permanent bounce or a complaint; a transient one is not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmjobs.domain.audience import normalize_address
from crmjobs.domain.rendering import (
    DIRECT_CAMPAIGN,
    decode_tag_value,
    dedupe_key_of,
    recipient_tag,
)

#: SES eventType -> the recipient row's flag and the campaign counter it moves.
COUNTED_EVENTS = {
    "Delivery": "delivered",
    "Bounce": "bounced",
    "Complaint": "complained",
    "Open": "opened",
    "Click": "clicked",
    "Reject": "rejected",
}


class NotAnSesEvent(ValueError):
    pass


@dataclass(frozen=True)
class SesEvent:
    event_type: str
    message_id: str
    workspace_id: str
    campaign_id: str
    #: The addresses the event is about (lower-cased), among the message's recipient.
    addresses: tuple[str, ...]
    bounce_type: str | None = None
    #: A direct email's dedupe key (its row's key), from its tags.
    dedupe_key: str | None = None

    @property
    def counter(self) -> str | None:
        return COUNTED_EVENTS.get(self.event_type)

    @property
    def suppression_reason(self) -> str | None:
        if self.event_type == "Complaint":
            return "complaint"
        if self.event_type == "Bounce" and self.bounce_type == "Permanent":
            return "bounce"
        return None


def _tag(tags: dict[str, Any], name: str) -> str | None:
    value = tags.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def parse_ses_event(detail: dict[str, Any]) -> SesEvent | None:
    """The event, or None when it is not about one of this application's messages (no
    tags naming workspace, campaign and recipient, or an event type not counted)."""
    if not isinstance(detail, dict) or "mail" not in detail:
        raise NotAnSesEvent("not an SES event (no mail object)")
    event_type = detail.get("eventType") or detail.get("notificationType")
    mail = detail["mail"]
    tags = mail.get("tags") or {}
    workspace, campaign, recipient = (_tag(tags, n) for n in ("workspace", "campaign", "recipient"))
    if event_type not in COUNTED_EVENTS or not (workspace and campaign and recipient):
        return None
    try:
        workspace_id, campaign_id = decode_tag_value(workspace), decode_tag_value(campaign)
    except ValueError:
        return None
    dedupe = _tag(tags, "dedupe") if campaign_id == DIRECT_CAMPAIGN else None
    if event_type == "Bounce":
        named = [
            r.get("emailAddress", "") for r in detail.get("bounce", {}).get("bouncedRecipients", [])
        ]
    elif event_type == "Complaint":
        named = [
            r.get("emailAddress", "")
            for r in detail.get("complaint", {}).get("complainedRecipients", [])
        ]
    else:
        named = list(mail.get("destination") or [])
    # Only the tagged recipient: an address that does not hash to the tag is not ours.
    addresses = tuple(
        sorted({a for a in map(normalize_address, named) if a and recipient_tag(a) == recipient})
    )
    return SesEvent(
        event_type=event_type,
        message_id=mail.get("messageId", ""),
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        addresses=addresses,
        bounce_type=detail.get("bounce", {}).get("bounceType"),
        dedupe_key=dedupe_key_of(dedupe) if dedupe else None,
    )
