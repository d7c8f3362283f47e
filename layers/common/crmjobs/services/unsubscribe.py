"""Unsubscribe links (RFC 8058 one-click POST, and a GET that shows a confirmation page):
a valid signed token opts the contact or prospect out, suppresses the address in its
workspace and moves the campaign's unsubscribed counter once. A forged or altered token
changes nothing."""

from __future__ import annotations

import html
from dataclasses import dataclass

from crmjobs.adapters.signing_key import unsubscribe_key
from crmjobs.domain.rendering import DIRECT_CAMPAIGN
from crmjobs.domain.unsubscribe_token import InvalidToken, UnsubscribeClaim, verify
from crmjobs.models.base import utcnow
from crmjobs.stores import deliveries, people, suppressions

RECIPIENT_TYPES = ("prospect", "contact")


@dataclass(frozen=True)
class Page:
    status: int
    body: str


def _page(status: int, title: str, text: str, form_action: str | None = None) -> Page:
    form = (
        f'<form method="post" action="{html.escape(form_action, quote=True)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
        if form_action
        else ""
    )
    body = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
    return Page(status, body)


def _claim(token: str | None) -> UnsubscribeClaim | None:
    if not token:
        return None
    try:
        claim = verify(token, unsubscribe_key())
    except InvalidToken:
        return None
    return claim if claim.recipient_type in RECIPIENT_TYPES else None


def unsubscribe(claim: UnsubscribeClaim) -> bool:
    """Opt out, suppress, count once; True when the campaign's counter moved."""
    people.opt_out(claim.workspace_id, claim.recipient_type, claim.recipient_id)
    suppressions.suppress(claim.workspace_id, claim.address, "unsubscribe")
    if claim.campaign_id == DIRECT_CAMPAIGN:
        return False
    return deliveries.flag_once(
        claim.workspace_id, claim.campaign_id, claim.address, "unsubscribed", utcnow()
    )


def handle(method: str, token: str | None, url: str) -> Page:
    """The HTTP route: GET shows the confirmation form, POST unsubscribes."""
    claim = _claim(token)
    if claim is None:
        return _page(400, "Invalid link", "This unsubscribe link is not valid.")
    if method == "GET":
        return _page(
            200,
            "Unsubscribe",
            f"Stop emails to {claim.address}?",
            form_action=url,
        )
    if method == "POST":
        unsubscribe(claim)
        return _page(200, "Unsubscribed", f"{claim.address} will get no more emails from us.")
    return _page(405, "Not allowed", "Use GET or POST.")
