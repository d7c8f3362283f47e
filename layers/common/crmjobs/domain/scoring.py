"""Lead scoring, rules version 1 (see the domain spec, "Lead scoring").

A score is a clamped sum of independent factors. The breakdown keeps every factor that
applied, with its points, so a user can see why a lead has its score; its raw sum may
exceed 100 (the raw maximum is 160) while the total is clamped to 0..100.

All datetimes must be timezone-aware: comparing a naive timestamp with an aware one
would silently depend on the machine's local zone, so naive values raise ValueError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

RULES_VERSION = 1
SCORE_MIN = 0
SCORE_MAX = 100
SCORE_MAX_AGE = timedelta(hours=24)

BASE_POINTS = 10
EMAIL_PRESENT_POINTS = 15
EMAIL_CORPORATE_POINTS = 10
PHONE_PRESENT_POINTS = 10
COMPANY_PRESENT_POINTS = 10
TITLE_PRESENT_POINTS = 10
TITLE_SENIOR_POINTS = 15

# (minimum estimated value in cents, points), highest threshold first.
ESTIMATED_VALUE_TIERS: tuple[tuple[int, int], ...] = (
    (1_000_000, 20),
    (500_000, 15),
    (100_000, 10),
)

STAGE_POINTS: dict[str, int] = {
    "new": 0,
    "contacted": 5,
    "qualified": 15,
    "proposal": 25,
    "negotiation": 35,
    "won": 50,
    "lost": -10,
}

# (contacted fewer than this many whole days ago, points), shortest window first.
RECENCY_TIERS: tuple[tuple[int, int], ...] = (
    (7, 10),
    (30, 5),
)

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "ymail.com",
        "rocketmail.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "protonmail.com",
        "protonmail.ch",
        "proton.me",
        "pm.me",
        "gmx.com",
        "gmx.net",
        "mail.com",
        "yandex.com",
        "yandex.ru",
    }
)

# Providers that also serve country domains (yahoo.co.uk, hotmail.fr, gmx.de,
# yandex.ua, outlook.com.br, ...). Matched by rule rather than listed one by one.
FREE_MAIL_FAMILIES: frozenset[str] = frozenset(
    {"yahoo", "hotmail", "outlook", "live", "aol", "gmx", "yandex"}
)

# What may follow a family name: a generic or country TLD, optionally with a country
# second level ("co.uk", "com.br", "ne.jp"). "live.acme.com" stays corporate because
# "acme.com" is neither.
_PUBLIC_SUFFIX = re.compile(r"(?:com|net|org|[a-z]{2})(?:\.[a-z]{2})?")

# Whole words, case-insensitive. Hyphens and spaces separate words, so "Vice-President",
# "Co-Founder" and "Head-of Sales" match; "MVP", "Directory", "Directorate" and "Head
# Office" do not. "vice president" and "co-founder" need no pattern of their own: their
# last word already matches. Accepted spellings beyond the spec's list: "v.p." for vp,
# "cofounder" for co-founder, and "svp"/"evp", which abbreviate senior/executive vice
# president (titles that match when written out).
_SENIOR_TITLE = re.compile(
    r"(?<!\w)(?:"
    r"ceo|cto|cfo|coo|cmo|cio|cso|cpo"
    r"|v\.?p\.?|svp|evp|president|chief|director"
    r"|head[\s-]+of"
    r"|founder|cofounder"
    r")(?!\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ProspectFacts:
    """The prospect fields that scoring reads. estimated_value is in cents."""

    email: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    stage: str = "new"
    estimated_value: int | None = None
    last_contacted_at: datetime | None = None


@dataclass(frozen=True)
class Factor:
    name: str
    points: int


@dataclass(frozen=True)
class ScoreResult:
    total: int
    breakdown: tuple[Factor, ...]
    rules_version: int

    def breakdown_dict(self) -> dict[str, int]:
        return {factor.name: factor.points for factor in self.breakdown}


def score_prospect(prospect: ProspectFacts, now: datetime) -> ScoreResult:
    """Score a prospect at time `now` (recency depends on it)."""
    _require_aware("now", now)
    candidates = (
        Factor("base", BASE_POINTS),
        *_email_factors(prospect.email),
        Factor("phone_present", PHONE_PRESENT_POINTS if _present(prospect.phone) else 0),
        Factor("company_present", COMPANY_PRESENT_POINTS if _present(prospect.company) else 0),
        *_title_factors(prospect.title),
        Factor("estimated_value", _estimated_value_points(prospect.estimated_value)),
        Factor("stage", _stage_points(prospect.stage)),
        Factor("recency", _recency_points(prospect.last_contacted_at, now)),
    )
    breakdown = tuple(factor for factor in candidates if factor.points != 0)
    raw_total = sum(factor.points for factor in breakdown)
    return ScoreResult(
        total=min(SCORE_MAX, max(SCORE_MIN, raw_total)),
        breakdown=breakdown,
        rules_version=RULES_VERSION,
    )


def is_stored_score(
    result: ScoreResult,
    *,
    total: int | None,
    breakdown: dict[str, int] | None,
    rules_version: int | None,
) -> bool:
    """The stored score (total, breakdown, rules version) is this result: no need to write."""
    return (
        total == result.total
        and breakdown == result.breakdown_dict()
        and rules_version == result.rules_version
    )


def is_free_mail(email: str) -> bool:
    """True when the address's domain belongs to a free mail provider.

    An address without a usable domain is not free mail (and not corporate either).
    """
    domain = _email_domain(email)
    if domain is None:
        return False
    if domain in FREE_MAIL_DOMAINS:
        return True
    family, _, suffix = domain.partition(".")
    return family in FREE_MAIL_FAMILIES and _PUBLIC_SUFFIX.fullmatch(suffix) is not None


def is_senior_title(title: str) -> bool:
    """True for C-level, VP, president, chief, director, head of, or founder titles."""
    return _SENIOR_TITLE.search(title) is not None


def needs_scoring(
    *,
    scored_at: datetime | None,
    updated_at: datetime | None,
    rules_version: int | None,
    now: datetime,
) -> bool:
    """Whether a prospect's stored score is missing or stale.

    Stale means: 24 hours old or more (the recency factor decays with time), the
    prospect changed after it was scored, or it was scored by older rules.
    """
    for name, value in (("now", now), ("scored_at", scored_at), ("updated_at", updated_at)):
        if value is not None:
            _require_aware(name, value)
    if scored_at is None or rules_version is None or rules_version < RULES_VERSION:
        return True
    if now - scored_at >= SCORE_MAX_AGE:
        return True
    return updated_at is not None and updated_at > scored_at


def _email_factors(email: str | None) -> tuple[Factor, Factor]:
    if not _present(email):
        return Factor("email_present", 0), Factor("email_corporate", 0)
    corporate = _email_domain(email) is not None and not is_free_mail(email)
    return (
        Factor("email_present", EMAIL_PRESENT_POINTS),
        Factor("email_corporate", EMAIL_CORPORATE_POINTS if corporate else 0),
    )


def _title_factors(title: str | None) -> tuple[Factor, Factor]:
    if not _present(title):
        return Factor("title_present", 0), Factor("title_senior", 0)
    return (
        Factor("title_present", TITLE_PRESENT_POINTS),
        Factor("title_senior", TITLE_SENIOR_POINTS if is_senior_title(title) else 0),
    )


def _estimated_value_points(cents: int | None) -> int:
    if cents is None:
        return 0
    for minimum, points in ESTIMATED_VALUE_TIERS:
        if cents >= minimum:
            return points
    return 0


def _stage_points(stage: str) -> int:
    try:
        return STAGE_POINTS[stage]
    except KeyError:
        known = ", ".join(STAGE_POINTS)
        raise ValueError(f"unknown stage {stage!r}; expected one of: {known}") from None


def _recency_points(last_contacted_at: datetime | None, now: datetime) -> int:
    if last_contacted_at is None:
        return 0
    _require_aware("last_contacted_at", last_contacted_at)
    # A contact date in the future (clock skew, data entry) counts as today.
    whole_days_ago = max(0, (now - last_contacted_at) // timedelta(days=1))
    for fewer_than_days, points in RECENCY_TIERS:
        if whole_days_ago < fewer_than_days:
            return points
    return 0


def _email_domain(email: str) -> str | None:
    """The lower-cased domain of an address, or None when it has no usable domain."""
    local_part, at, domain = email.strip().rpartition("@")
    if not at or not local_part:
        return None
    domain = domain.lower().removesuffix(".")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels) or any(ch.isspace() for ch in domain):
        return None
    return domain


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
