"""Campaign and recipient statuses and what they allow (spec: domain.md, "Campaigns" and
"Campaigns: statuses and counts")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crmjobs.domain.audience import Exclusion, UnknownAudience, parse_audience
from crmjobs.domain.rendering import UnknownPlaceholder, check_placeholders


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    #: The send call was made but its outcome never recorded: never sent again.
    UNCONFIRMED = "unconfirmed"


FINAL_RECIPIENT_STATUSES = frozenset(
    {RecipientStatus.SENT, RecipientStatus.FAILED, RecipientStatus.UNCONFIRMED}
)
#: Statuses a send-campaign may start (or resume) sending from.
STARTABLE = frozenset(
    {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED, CampaignStatus.FAILED}
)

#: Counters the ledger decides (recounted from the recipients' rows).
LEDGER_COUNTERS = ("recipients", "pending", "sent", "failed", "unconfirmed")
#: Counters SES events and unsubscribes move, each once per recipient.
FEEDBACK_COUNTERS = (
    "delivered",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "rejected",
    "unsubscribed",
)
EXCLUSIONS = tuple(reason.value for reason in Exclusion)


def empty_counters() -> dict[str, object]:
    return {
        **{name: 0 for name in LEDGER_COUNTERS + FEEDBACK_COUNTERS},
        "excluded": {reason: 0 for reason in EXCLUSIONS},
    }


class ContentError(ValueError):
    """The campaign cannot be sent as it is: it goes back to draft with this error."""


def check_sendable(audience: str | None, subject: str | None, body: str | None) -> None:
    """Everything that can be known wrong before a recipient is read."""
    try:
        parse_audience(audience)
    except UnknownAudience as exc:
        raise ContentError(str(exc)) from None
    missing = [name for name, value in (("subject", subject), ("body", body)) if not value]
    if missing:
        raise ContentError(f"the campaign has no {' and no '.join(missing)}")
    try:
        check_placeholders(subject or "", body or "")
    except UnknownPlaceholder as exc:
        raise ContentError(str(exc)) from None


class FireDecision(StrEnum):
    SEND = "send"
    #: An older schedule, or one of a campaign paused, sent or returned to draft since.
    STALE = "stale"


def decide_fire(status: str, scheduled_for: datetime | None, fired_for: datetime) -> FireDecision:
    """A schedule's send-campaign sends only if the campaign is still scheduled for that time."""
    if status == CampaignStatus.SCHEDULED and scheduled_for == fired_for:
        return FireDecision.SEND
    return FireDecision.STALE


@dataclass(frozen=True)
class LedgerCounts:
    by_status: Mapping[str, int]

    def __getitem__(self, status: RecipientStatus) -> int:
        return self.by_status.get(status, 0)

    @property
    def recipients(self) -> int:
        return sum(self.by_status.values())

    @property
    def unfinished(self) -> int:
        return self[RecipientStatus.PENDING] + self[RecipientStatus.SENDING]

    def counters(self) -> dict[str, int]:
        return {
            "recipients": self.recipients,
            "pending": self.unfinished,
            "sent": self[RecipientStatus.SENT],
            "failed": self[RecipientStatus.FAILED],
            "unconfirmed": self[RecipientStatus.UNCONFIRMED],
        }


def final_status(counts: LedgerCounts) -> CampaignStatus | None:
    """completed once every recipient is final and some mail may have gone out; failed when
    nothing could be sent; None while recipients remain."""
    if counts.unfinished:
        return None
    if counts[RecipientStatus.SENT] + counts[RecipientStatus.UNCONFIRMED] == 0:
        return CampaignStatus.FAILED
    return CampaignStatus.COMPLETED
