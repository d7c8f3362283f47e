"""The people a campaign or a direct email goes to: pages of a workspace's prospects or
contacts with the fields a message names, one person by id, and their opt-out flag."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import UpdateError

from crmjobs.domain.audience import (
    Audience,
    Person,
    RecipientType,
    contact_display_name,
    prospect_in_audience,
    split_name,
)
from crmjobs.errors import Conflict, NotFound
from crmjobs.models import Contact, Prospect
from crmjobs.models.base import utcnow
from crmjobs.stores.dynamodb import CONDITION_FAILED, query_page

_PROSPECT_FIELDS = ["workspaceId", "id", "name", "email", "company", "title", "stage",
                    "emailOptOut"]
_CONTACT_FIELDS = ["workspaceId", "id", "firstName", "lastName", "email", "company", "title",
                   "emailOptOut"]


def _from_prospect(prospect: Prospect) -> Person:
    first, last = split_name(prospect.name)
    return Person(
        "prospect",
        prospect.id,
        prospect.email or "",
        prospect.name or "there",
        first,
        last,
        prospect.company or "",
        prospect.title or "",
        bool(prospect.email_opt_out),
    )


def _from_contact(contact: Contact) -> Person:
    return Person(
        "contact",
        contact.id,
        contact.email or "",
        contact_display_name(contact.first_name, contact.last_name),
        contact.first_name or "",
        contact.last_name or "",
        contact.company or "",
        contact.title or "",
        bool(contact.email_opt_out),
    )


def audience_page(
    workspace_id: str, audience: Audience, cursor: dict[str, Any] | None, limit: int
) -> tuple[list[Person], int, dict[str, Any] | None]:
    """One Query page of the workspace's prospects or contacts (never a Scan): the people
    in the audience, how many records were read, and the next page's cursor."""
    if audience is Audience.ALL_CONTACTS:
        contacts = query_page(
            Contact.query, workspace_id, cursor, limit, attributes_to_get=_CONTACT_FIELDS
        )
        return [_from_contact(c) for c in contacts.items], len(contacts.items), contacts.cursor
    prospects = query_page(
        Prospect.query, workspace_id, cursor, limit, attributes_to_get=_PROSPECT_FIELDS
    )
    people = [
        _from_prospect(p)
        for p in prospects.items
        if prospect_in_audience(audience, p.stage, p.email)
    ]
    return people, len(prospects.items), prospects.cursor


def _model(recipient_type: RecipientType):
    return Contact if recipient_type == "contact" else Prospect


def get(workspace_id: str, recipient_type: RecipientType, recipient_id: str) -> Person:
    """The prospect or contact of this workspace; NotFound otherwise."""
    found = _model(recipient_type).get_in_workspace(
        workspace_id, recipient_id, consistent_read=True
    )
    if found is None:
        raise NotFound(f"{recipient_type} not found")
    return _from_contact(found) if recipient_type == "contact" else _from_prospect(found)


def opt_out(workspace_id: str, recipient_type: RecipientType, recipient_id: str) -> bool:
    """Set emailOptOut on the record of this workspace; False when there is none. The write
    is over the record as read (a prospect's version moves, so a scorer that read it before
    re-reads), and a concurrent edit makes it read and write again."""
    model = _model(recipient_type)
    for _ in range(5):
        found = model.get_in_workspace(workspace_id, recipient_id, consistent_read=True)
        if found is None:
            return False
        if found.email_opt_out:
            return True
        actions = [model.email_opt_out.set(True)]
        if recipient_type == "prospect":
            actions.append(model.updated_at.set(utcnow()))
        try:
            found.update(actions=actions, condition=found.unchanged_since_read()
                         if recipient_type == "prospect" else model.id.exists())
        except UpdateError as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
            continue
        return True
    raise Conflict(f"{recipient_type} {recipient_id} kept changing; opt-out not written")
