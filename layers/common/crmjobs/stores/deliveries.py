"""The per-recipient ledger of campaigns (the deliveries table).

Listing the audience writes an audience entry per address (AudienceEntry, in batches of
25: BatchWriteItem is unconditional, so an entry holds no send state and rewriting it is
harmless). A recipient's Delivery row is created by its claim (pending -> sending, a
conditional UpdateItem that also copies the entry's fields) and moved on to sent | failed
| unconfirmed by conditional writes, one per row. A recipient with no Delivery row yet is
pending.

Every read and write names the campaign's keys, `<workspaceId>#<campaignId>` and
`audience:<workspaceId>#<campaignId>`, so no campaign ever touches another workspace's rows.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from crmjobs import config
from crmjobs.domain.audience import Person
from crmjobs.domain.campaigns import RecipientStatus
from crmjobs.domain.rendering import DIRECT_CAMPAIGN
from crmjobs.errors import Conflict
from crmjobs.models import AudienceEntry, Campaign, Delivery
from crmjobs.stores.dynamodb import CONDITION_FAILED, Page, query_page

#: Row writes of one call run side by side, each its own conditional request.
_WRITERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ledger-writes")
_TRANSACTION_TRIES = 8
#: A transaction item's cancellation reason when its condition did not hold.
CONDITION_NOT_MET = "ConditionalCheckFailed"

PENDING = RecipientStatus.PENDING.value
SENDING = RecipientStatus.SENDING.value
SENT = RecipientStatus.SENT.value
FAILED = RecipientStatus.FAILED.value
UNCONFIRMED = RecipientStatus.UNCONFIRMED.value
#: The fields a claim copies from the audience entry onto the Delivery row.
_RECIPIENT_FIELDS = ("recipient", "name", "first_name", "last_name", "company", "title")


def campaign_key(workspace_id: str, campaign_id: str) -> str:
    return Delivery.key_for(workspace_id, campaign_id)


def audience_key(workspace_id: str, campaign_id: str) -> str:
    return AudienceEntry.key_for(workspace_id, campaign_id)


def row(workspace_id: str, campaign_id: str, address: str) -> Delivery:
    """A row by its key only (for conditional writes that need no read)."""
    return Delivery(campaign_key(workspace_id, campaign_id), address)


# --------------------------------------------------------------------------- listing


def listed_by(workspace_id: str, campaign_id: str, addresses: Iterable[str]) -> dict[str, str]:
    """Address -> the record its audience entry came from, for the addresses listed already."""
    key = audience_key(workspace_id, campaign_id)
    wanted = sorted({address for address in addresses if address})
    entries = AudienceEntry.batch_get(
        [(key, address) for address in wanted],
        consistent_read=True,
        attributes_to_get=["campaignKey", "email", "recipient"],
    )
    return {entry.email: entry.recipient for entry in entries}


def add_recipients(workspace_id: str, campaign_id: str, people: Sequence[Person]) -> int:
    """Audience entries for the people screened as new (BatchWriteItem, 25 a request, the
    unprocessed ones sent again): how many were written."""
    key = audience_key(workspace_id, campaign_id)
    with AudienceEntry.batch_write() as batch:
        for person in people:
            batch.save(AudienceEntry(key, person.address, **recipient_fields(person)))
    return len(people)


def recipient_fields(person: Person) -> dict[str, str]:
    """What a row keeps of a person: the record it came from and the fields a message names."""
    return {
        "recipient": person.key,
        "name": person.name,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "company": person.company,
        "title": person.title,
    }


def _pending_row(workspace_id: str, campaign_id: str, entry: AudienceEntry) -> Delivery:
    """The row an audience entry's claim will write (pending: not written yet)."""
    return Delivery(
        campaign_key(workspace_id, campaign_id),
        entry.email,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        status=PENDING,
        **{name: getattr(entry, name) for name in _RECIPIENT_FIELDS},
    )


def _rows_by_address(
    workspace_id: str, campaign_id: str, addresses: Sequence[str]
) -> dict[str, Delivery]:
    """The rows of these addresses: a Query of the rows' key range from the first address
    to the last (a page of entries is a range too), since a row exists only from its
    claim on: in a first pass there are few, and the Query reads only those."""
    if not addresses:
        return {}
    wanted = set(addresses)
    found = Delivery.query(
        campaign_key(workspace_id, campaign_id),
        Delivery.email.between(min(addresses), max(addresses)),
        consistent_read=True,
    )
    return {row.email: row for row in found if row.email in wanted}


def _as_rows(workspace_id: str, campaign_id: str, entries: list[AudienceEntry]) -> list[Delivery]:
    """Each entry as its Delivery row or, where its send was never claimed, the pending row
    its claim will write (with the fields its message names)."""
    rows = _rows_by_address(workspace_id, campaign_id, [entry.email for entry in entries])
    return [rows.get(entry.email) or _pending_row(workspace_id, campaign_id, entry)
            for entry in entries]


def ledger_page(
    workspace_id: str, campaign_id: str, cursor: dict[str, Any] | None, limit: int
) -> Page[Delivery]:
    """Up to `limit` recipients in address order, as `_as_rows` gives them (a Query of the
    audience entries, then one of their rows); `cursor` continues."""
    entries = query_page(
        AudienceEntry.query, audience_key(workspace_id, campaign_id), cursor, limit,
        consistent_read=True,
    )
    return Page(_as_rows(workspace_id, campaign_id, entries.items), entries.cursor)


def address_page(
    workspace_id: str, campaign_id: str, cursor: dict[str, Any] | None, limit: int
) -> Page[str]:
    """Up to `limit` listed addresses in order (a Query of the audience entries' keys);
    `cursor` continues."""
    entries = query_page(
        AudienceEntry.query, audience_key(workspace_id, campaign_id), cursor, limit,
        consistent_read=True, attributes_to_get=["email"],
    )
    return Page([entry.email for entry in entries.items], entries.cursor)


def range_rows(workspace_id: str, campaign_id: str, first: str, last: str) -> list[Delivery]:
    """The recipients listed from `first` to `last` (addresses, inclusive) in order, as
    `_as_rows` gives them: a Query of the entries and one of the rows."""
    entries = AudienceEntry.query(
        audience_key(workspace_id, campaign_id),
        AudienceEntry.email.between(first, last),
        consistent_read=True,
    )
    return _as_rows(workspace_id, campaign_id, list(entries))


def cursor_after(workspace_id: str, campaign_id: str, address: str) -> dict[str, Any]:
    """The cursor of a ledger page that starts after `address`."""
    return {"campaignKey": {"S": audience_key(workspace_id, campaign_id)}, "email": {"S": address}}


def count_by_status(workspace_id: str, campaign_id: str) -> Counter[str]:
    """Every recipient's status, counted: the Delivery rows' statuses (a paged Query,
    statuses only), and as pending the listed recipients with no row yet (a COUNT Query)."""
    counts: Counter[str] = Counter()
    for found in Delivery.query(
        campaign_key(workspace_id, campaign_id),
        consistent_read=True,
        attributes_to_get=["status"],
    ):
        counts[found.status] += 1
    listed = AudienceEntry.count(audience_key(workspace_id, campaign_id), consistent_read=True)
    counts[PENDING] += listed - sum(counts.values())
    return +counts


def get(workspace_id: str, campaign_id: str, address: str) -> Delivery | None:
    try:
        return Delivery.get(campaign_key(workspace_id, campaign_id), address, consistent_read=True)
    except Delivery.DoesNotExist:
        return None


# --------------------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Transition:
    """One conditional write of a row."""

    row: Delivery
    actions: list[Action]
    condition: Condition


@cache
def _connection(region: str, endpoint: str | None) -> Connection:
    """One connection (and so one botocore client) per region and endpoint."""
    return Connection(region=region, host=endpoint)


def _cancellation_codes(exc: TransactWriteError, size: int) -> list[str | None]:
    reasons = exc.cancellation_reasons or [None] * size
    return [reason.code if reason is not None else None for reason in reasons]


def _update(step: Transition) -> bool:
    """One conditional UpdateItem: False when its condition did not hold."""
    try:
        step.row.update(actions=step.actions, condition=step.condition, add_version_condition=False)
    except UpdateError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            return False
        raise
    return True


def transact(transitions: Sequence[Transition]) -> list[bool]:
    """Apply each transition (a conditional UpdateItem each, side by side: not
    TransactWriteItems, since the rows are independent and the emulator copies a whole table
    for every transaction item); for each, whether it was applied."""
    if len(transitions) <= 1:
        return [_update(step) for step in transitions]
    return list(_WRITERS.map(_update, transitions))


def claim(rows: Sequence[Delivery], now: datetime) -> list[Delivery]:
    """pending -> sending for each row (written now if it is not yet: a campaign's row is
    created by its claim, with the recipient's fields), before its send: the rows this call
    claimed."""
    transitions = [
        Transition(
            row,
            [
                Delivery.status.set(SENDING),
                Delivery.claimed_at.set(now),
                Delivery.workspace_id.set(row.workspace_id),
                *(
                    getattr(Delivery, name).set(getattr(row, name))
                    for name in ("campaign_id", *_RECIPIENT_FIELDS)
                    if getattr(row, name) is not None
                ),
            ],
            Delivery.email.does_not_exist() | (Delivery.status == PENDING),
        )
        for row in rows
    ]
    return [row for row, ok in zip(rows, transact(transitions), strict=True) if ok]


def sent(row: Delivery, message_id: str, now: datetime) -> Transition:
    """The send call returned: sent with SES's MessageId (also over `unconfirmed`, set by a
    pass that thought this send was lost)."""
    return Transition(
        row,
        [
            Delivery.status.set(SENT),
            Delivery.message_id.set(message_id),
            Delivery.sent_at.set(now),
            Delivery.error.remove(),
        ],
        Delivery.status.is_in(SENDING, UNCONFIRMED),
    )


def failed(row: Delivery, reason: str) -> Transition:
    return Transition(
        row,
        [Delivery.status.set(FAILED), Delivery.error.set(reason[:1000])],
        Delivery.status == SENDING,
    )


def released(row: Delivery, reason: str | None = None) -> Transition:
    """Back to pending: the message was certainly not sent (throttled, stopped, late)."""
    actions = [Delivery.status.set(PENDING), Delivery.claimed_at.remove()]
    actions.append(Delivery.error.set(reason[:1000]) if reason else Delivery.error.remove())
    return Transition(row, actions, Delivery.status == SENDING)


def unconfirmed(row: Delivery, reason: str) -> Transition:
    """A send whose outcome is unknown: never sent again."""
    return Transition(
        row,
        [Delivery.status.set(UNCONFIRMED), Delivery.error.set(reason[:1000])],
        Delivery.status == SENDING,
    )


# --------------------------------------------------------------------------- direct email


def direct_key(workspace_id: str, dedupe_key: str) -> str:
    """The partition key of a direct email's row (its dedupe key names it)."""
    return f"{workspace_id}#{DIRECT_CAMPAIGN}#{dedupe_key}"


def create_claimed(delivery: Delivery) -> None:
    """Write a direct email's row already claimed (sending); Conflict if it exists."""
    try:
        delivery.save(condition=Delivery.email.does_not_exist(), add_version_condition=False)
    except PutError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            raise Conflict("the delivery exists") from None
        raise


def find_direct(key: str) -> Delivery | None:
    """The row of a direct email's dedupe key, whatever its address."""
    return next(iter(Delivery.query(key, consistent_read=True, limit=1)), None)


# --------------------------------------------------------------------------- feedback

#: The counter an event or an unsubscribe moves -> the row's attribute that records it once.
FLAGS = {
    "delivered": Delivery.delivered_at,
    "bounced": Delivery.bounced_at,
    "complained": Delivery.complained_at,
    "opened": Delivery.opened_at,
    "clicked": Delivery.clicked_at,
    "rejected": Delivery.rejected_at,
    "unsubscribed": Delivery.unsubscribed_at,
}


def flag_direct_once(
    workspace_id: str,
    dedupe_key: str,
    address: str,
    counter: str,
    at: datetime,
    *,
    message_id: str,
    bounce_type: str | None = None,
) -> bool:
    """Record one event on a direct email's row (no campaign counts it): only if the row
    exists, carries this SES message id and has no such event yet. False when nothing
    changed (a repeat, or not this row)."""
    flag = FLAGS[counter]
    actions = [flag.set(at)]
    if bounce_type:
        actions.append(Delivery.bounce_type.set(bounce_type))
    try:
        Delivery(direct_key(workspace_id, dedupe_key), address).update(
            actions=actions,
            condition=Delivery.email.exists()
            & flag.does_not_exist()
            & (Delivery.message_id == message_id),
            add_version_condition=False,
        )
    except UpdateError as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            return False
        raise
    return True


def flag_once(
    workspace_id: str,
    campaign_id: str,
    address: str,
    counter: str,
    at: datetime,
    *,
    message_id: str | None = None,
    bounce_type: str | None = None,
) -> bool:
    """Record one event on the recipient's row and move the campaign's counter, in one
    transaction: only if the row exists, carries this SES message id (when one is given)
    and has no such event yet. False when nothing changed (a repeat, or not this row)."""
    flag = FLAGS[counter]
    condition = Delivery.email.exists() & flag.does_not_exist()
    if message_id is not None:
        condition &= Delivery.message_id == message_id
    actions = [flag.set(at)]
    if bounce_type:
        actions.append(Delivery.bounce_type.set(bounce_type))
    endpoint = config.env("AWS_ENDPOINT_URL_DYNAMODB") or config.env("AWS_ENDPOINT_URL")
    for attempt in range(_TRANSACTION_TRIES):
        try:
            with TransactWrite(connection=_connection(config.region(), endpoint)) as tx:
                tx.update(
                    row(workspace_id, campaign_id, address),
                    actions=actions,
                    condition=condition,
                    add_version_condition=False,
                )
                tx.update(
                    Campaign(workspace_id, campaign_id),
                    actions=[Campaign.counters[counter].add(1)],
                    condition=Campaign.counters.exists(),
                )
        except TransactWriteError as exc:
            if CONDITION_NOT_MET in _cancellation_codes(exc, 2):
                return False
            if attempt == _TRANSACTION_TRIES - 1:
                raise
            time.sleep(min(1.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0))
            continue
        return True
    return False
