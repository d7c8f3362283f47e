"""Who a campaign goes to (spec: domain.md, "Campaigns").

The audience is read page by page; each page is screened here against the ledger rows that
already exist for its addresses (an earlier page, or an earlier attempt of this one) and the
workspace's suppressions, so the outcome of a page is the same however often it runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

RecipientType = Literal["prospect", "contact"]


class Audience(StrEnum):
    ALL_LEADS = "all_leads"
    NEW_LEADS = "new_leads"
    QUALIFIED_LEADS = "qualified_leads"
    ALL_CONTACTS = "all_contacts"

    @property
    def recipient_type(self) -> RecipientType:
        return "contact" if self is Audience.ALL_CONTACTS else "prospect"


QUALIFIED_STAGES = frozenset({"qualified", "proposal", "negotiation"})


class Exclusion(StrEnum):
    """Why a person of the audience is not mailed (the names of the excluded counters)."""

    OPTED_OUT = "optedOut"
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


class UnknownAudience(ValueError):
    pass


def parse_audience(value: str | None) -> Audience:
    try:
        return Audience(value)
    except ValueError:
        known = ", ".join(audience.value for audience in Audience)
        raise UnknownAudience(f"unknown audience {value!r}; known audiences: {known}") from None


def prospect_in_audience(audience: Audience, stage: str | None, email: str | None) -> bool:
    """Prospects with an email, and for new/qualified leads in those stages."""
    if audience is Audience.ALL_CONTACTS or not (email or "").strip():
        return False
    stage = stage or "new"
    if audience is Audience.NEW_LEADS:
        return stage == "new"
    if audience is Audience.QUALIFIED_LEADS:
        return stage in QUALIFIED_STAGES
    return True


def contact_display_name(first_name: str | None, last_name: str | None) -> str:
    """First and last name joined, or "there" ("Hi there")."""
    joined = " ".join(part.strip() for part in (first_name, last_name) if part and part.strip())
    return joined or "there"


def split_name(name: str | None) -> tuple[str, str]:
    """A prospect's single name as (first, last): the first word and the rest."""
    words = (name or "").split()
    return (words[0], " ".join(words[1:])) if words else ("", "")


def normalize_address(raw: str) -> str:
    """The ledger's key for an address: trimmed and lower-cased (duplicates are found by it)."""
    return raw.strip().lower()


def is_valid_address(address: str) -> bool:
    """Syntax only (no DNS): a campaign must not wait on, or leak to, the network."""
    # Imported on first use: 25-35 ms that the functions importing this module for its
    # other rules (agents, feedback, the ledger) would pay at every cold start.
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@dataclass(frozen=True)
class Person:
    """One record of the audience, with the fields a message may name."""

    recipient_type: RecipientType
    recipient_id: str
    email: str
    name: str
    first_name: str
    last_name: str
    company: str
    title: str
    opted_out: bool

    @property
    def key(self) -> str:
        """Which record a ledger row came from (so a repeated page is not a duplicate)."""
        return f"{self.recipient_type}:{self.recipient_id}"

    @property
    def address(self) -> str:
        return normalize_address(self.email)


@dataclass(frozen=True)
class PageScreening:
    """A page's outcome: the new ledger rows, how many it already had, the exclusions."""

    new: list[Person]
    already_listed: int
    excluded: Counter[str]


def screen_page(
    people: Iterable[Person],
    listed_by: Mapping[str, str],
    suppressed: frozenset[str] | set[str],
) -> PageScreening:
    """Screen one page.

    `listed_by` maps each address that already has a ledger row to the record that row came
    from. A person whose own row exists is already a recipient (a repeated page); any other
    row of that address makes the person a duplicate. The ledger is checked first so that a
    repeated page counts the same even after a recipient unsubscribed or bounced.
    """
    owners = dict(listed_by)
    new: list[Person] = []
    already = 0
    excluded: Counter[str] = Counter()
    for person in people:
        address = person.address
        owner = owners.get(address)
        if owner == person.key:
            already += 1
        elif owner is not None:
            excluded[Exclusion.DUPLICATE] += 1
        elif person.opted_out:
            excluded[Exclusion.OPTED_OUT] += 1
        elif not is_valid_address(address):
            excluded[Exclusion.INVALID] += 1
        elif address in suppressed:
            excluded[Exclusion.SUPPRESSED] += 1
        else:
            owners[address] = person.key
            new.append(person)
    return PageScreening(new, already, excluded)
