"""SES feedback: each event updates the recipient's row and the campaign's counters once
(SES repeats events; a direct email's row, found by the dedupe key its tags carry, has no
campaign to count it), and a permanent bounce or a complaint suppresses the address in the
message's workspace. Matched by the message's tags and its SES message id, never by an
address alone (the same address may be in several workspaces)."""

from __future__ import annotations

from functools import partial
from typing import Any

from crmjobs.domain.feedback import SesEvent
from crmjobs.domain.rendering import DIRECT_CAMPAIGN
from crmjobs.models.base import utcnow
from crmjobs.stores import deliveries, suppressions


def record_event(event: SesEvent) -> dict[str, Any]:
    """What the event changed: counted (rows whose counter moved) and suppressed. A
    campaign's event counts only on the row that carries its message id (an event of
    another workspace's message with these tags changes nothing)."""
    counted = suppressed = 0
    for address in event.addresses:
        if event.campaign_id == DIRECT_CAMPAIGN:
            flag = (
                partial(deliveries.flag_direct_once, event.workspace_id, event.dedupe_key)
                if event.dedupe_key is not None
                else None
            )
        else:
            row = deliveries.get(event.workspace_id, event.campaign_id, address)
            if row is None or row.message_id != event.message_id:
                continue
            flag = partial(deliveries.flag_once, event.workspace_id, event.campaign_id)
        if flag is not None and event.counter is not None:
            counted += flag(
                address,
                event.counter,
                utcnow(),
                message_id=event.message_id,
                bounce_type=event.bounce_type,
            )
        if event.suppression_reason is not None:
            suppressed += suppressions.suppress(
                event.workspace_id, address, event.suppression_reason
            )
    return {"counted": counted, "suppressed": suppressed}
