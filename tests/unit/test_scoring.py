"""Lead scoring rules version 1: every factor, its boundaries, and the staleness rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from crmjobs.domain.scoring import (
    RULES_VERSION,
    SCORE_MAX_AGE,
    STAGE_POINTS,
    Factor,
    ProspectFacts,
    is_free_mail,
    is_senior_title,
    is_stored_score,
    needs_scoring,
    score_prospect,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

FACTOR_ORDER = (
    "base",
    "email_present",
    "email_corporate",
    "phone_present",
    "company_present",
    "title_present",
    "title_senior",
    "estimated_value",
    "stage",
    "recency",
)


def points_of(prospect: ProspectFacts, factor_name: str) -> int:
    """Points a single factor contributed; 0 when it is absent from the breakdown."""
    return score_prospect(prospect, NOW).breakdown_dict().get(factor_name, 0)


# --- base and the clamp -------------------------------------------------------------


def test_an_empty_prospect_scores_only_the_base() -> None:
    result = score_prospect(ProspectFacts(), NOW)

    assert result.total == 10
    assert result.breakdown == (Factor("base", 10),)
    assert result.rules_version == RULES_VERSION == 1


def test_a_maximal_prospect_is_clamped_to_100_and_keeps_its_raw_160_breakdown() -> None:
    prospect = ProspectFacts(
        email="dana@acme.com",
        phone="+1 555 0100",
        company="Acme",
        title="Chief Executive Officer",
        stage="won",
        estimated_value=5_000_000,
        last_contacted_at=NOW - timedelta(days=1),
    )

    result = score_prospect(prospect, NOW)

    assert result.total == 100
    assert sum(factor.points for factor in result.breakdown) == 160
    assert result.breakdown_dict() == {
        "base": 10,
        "email_present": 15,
        "email_corporate": 10,
        "phone_present": 10,
        "company_present": 10,
        "title_present": 10,
        "title_senior": 15,
        "estimated_value": 20,
        "stage": 50,
        "recency": 10,
    }


def test_a_lost_prospect_with_nothing_else_scores_zero() -> None:
    result = score_prospect(ProspectFacts(stage="lost"), NOW)

    assert result.total == 0
    assert result.breakdown == (Factor("base", 10), Factor("stage", -10))


def test_breakdown_lists_only_applied_factors_in_the_fixed_order() -> None:
    prospect = ProspectFacts(
        email="someone@gmail.com",
        company="Acme",
        title="Engineer",
        stage="new",
        estimated_value=50,
    )

    names = [factor.name for factor in score_prospect(prospect, NOW).breakdown]

    assert names == ["base", "email_present", "company_present", "title_present"]


def test_random_prospects_total_is_the_clamped_breakdown_sum() -> None:
    rng = random.Random(20260315)
    emails = [None, "", "  ", "a@acme.com", "b@gmail.com", "c@yahoo.co.uk", "broken", "d@"]
    titles = [None, "", "CEO", "Engineer", "MVP", "Head of Sales", "Co-Founder", "Advisor"]
    seen_totals = set()

    for _ in range(5_000):
        prospect = ProspectFacts(
            email=rng.choice(emails),
            phone=rng.choice([None, "", "+44 20 7946 0000"]),
            company=rng.choice([None, " ", "Acme"]),
            title=rng.choice(titles),
            stage=rng.choice(list(STAGE_POINTS)),
            estimated_value=rng.choice([None, rng.randint(-1_000, 3_000_000)]),
            last_contacted_at=rng.choice(
                [None, NOW - timedelta(seconds=rng.randint(-86_400 * 5, 86_400 * 60))]
            ),
        )

        result = score_prospect(prospect, NOW)
        raw = sum(factor.points for factor in result.breakdown)
        names = [factor.name for factor in result.breakdown]

        assert result.total == min(100, max(0, raw))
        assert 0 <= result.total <= 100
        assert all(factor.points != 0 for factor in result.breakdown)
        assert names == [name for name in FACTOR_ORDER if name in names]
        assert result.breakdown_dict() == {f.name: f.points for f in result.breakdown}
        seen_totals.add(result.total)

    # The sample reached both clamp ends, so the property was exercised where it matters.
    assert {0, 100} <= seen_totals


# --- email ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "present_points", "corporate_points"),
    [
        ("dana@acme.com", 15, 10),
        ("  dana@acme.com  ", 15, 10),
        ("dana@acme.com.", 15, 10),
        ("dana@gmail.com", 15, 0),
        ("DANA@GMAIL.COM", 15, 0),
        ("dana@yahoo.co.uk", 15, 0),
        ("no-at-sign.acme.com", 15, 0),
        ("dana@", 15, 0),
        ("@acme.com", 15, 0),
        ("dana@localhost", 15, 0),
        ("dana@acme..com", 15, 0),
        (None, 0, 0),
        ("", 0, 0),
        ("   ", 0, 0),
        ("\t\n", 0, 0),
    ],
)
def test_email_factors(email: str | None, present_points: int, corporate_points: int) -> None:
    prospect = ProspectFacts(email=email)

    assert points_of(prospect, "email_present") == present_points
    assert points_of(prospect, "email_corporate") == corporate_points


@pytest.mark.parametrize(
    "email",
    [
        "a@gmail.com",
        "a@GMAIL.COM",
        "a@Gmail.Com",
        "a@gmail.com.",
        " a@gmail.com ",
        "a@googlemail.com",
        "a@yahoo.com",
        "a@yahoo.co.uk",
        "a@yahoo.fr",
        "a@yahoo.com.br",
        "a@yahoo.co.jp",
        "a@ymail.com",
        "a@rocketmail.com",
        "a@hotmail.com",
        "a@hotmail.co.uk",
        "a@hotmail.de",
        "a@outlook.com",
        "a@outlook.fr",
        "a@outlook.com.au",
        "a@live.com",
        "a@live.co.uk",
        "a@live.nl",
        "a@msn.com",
        "a@aol.com",
        "a@aol.co.uk",
        "a@icloud.com",
        "a@me.com",
        "a@mac.com",
        "a@protonmail.com",
        "a@protonmail.ch",
        "a@proton.me",
        "a@pm.me",
        "a@gmx.com",
        "a@gmx.net",
        "a@gmx.de",
        "a@mail.com",
        "a@yandex.com",
        "a@yandex.ru",
        "first.last+tag@gmail.com",
        '"odd@local"@gmail.com',
    ],
)
def test_free_mail_domains(email: str) -> None:
    assert is_free_mail(email)


@pytest.mark.parametrize(
    "email",
    [
        "a@acme.com",
        "a@mygmail.com",
        "a@gmail-corp.com",
        "a@gmail.acme.com",
        "a@mail.gmail.example.org",
        "a@yahoo-inc.com",
        "a@yahooligans.com",
        "a@live.acme.com",
        "a@outlook.acme.io",
        "a@hotmailer.com",
        "a@email.com",
        "a@me.company.com",
        "a@proton.company",
        "gmail.com",
        "a@",
        "a@gmail",
    ],
)
def test_corporate_or_unusable_domains_are_not_free_mail(email: str) -> None:
    assert not is_free_mail(email)


# --- phone and company ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["phone", "company"])
@pytest.mark.parametrize(("value", "points"), [("x", 10), (None, 0), ("", 0), ("  \t", 0)])
def test_phone_and_company_count_when_not_blank(field: str, value: str | None, points: int) -> None:
    prospect = ProspectFacts(**{field: value})

    assert points_of(prospect, f"{field}_present") == points


# --- title ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "present_points", "senior_points"),
    [
        ("CEO", 10, 15),
        ("Software Engineer", 10, 0),
        ("MVP", 10, 0),
        ("  Director  ", 10, 15),
        (None, 0, 0),
        ("", 0, 0),
        ("   ", 0, 0),
    ],
)
def test_title_factors(title: str | None, present_points: int, senior_points: int) -> None:
    prospect = ProspectFacts(title=title)

    assert points_of(prospect, "title_present") == present_points
    assert points_of(prospect, "title_senior") == senior_points


@pytest.mark.parametrize(
    "title",
    [
        "CEO",
        "ceo",
        "CEO & Co-Founder",
        "CEO/Founder",
        "CTO",
        "CFO",
        "COO",
        "CMO",
        "CIO",
        "CSO",
        "CPO",
        "VP",
        "VP of Sales",
        "Sr. VP, Sales",
        "V.P. Marketing",
        "SVP Operations",
        "EVP, Finance",
        "Vice President",
        "vice president of engineering",
        "Vice-President",
        "President",
        "Chief Revenue Officer",
        "Chief of Staff",
        "Director",
        "Managing Director",
        "Director of Engineering",
        "Sales Director (EMEA)",
        "Head of Growth",
        "HEAD OF SALES",
        "Head-of Product",
        "Founder",
        "Co-Founder",
        "Co Founder",
        "Cofounder",
        "Founder & CEO",
    ],
)
def test_senior_titles(title: str) -> None:
    assert is_senior_title(title)


@pytest.mark.parametrize(
    "title",
    [
        "MVP",
        "MVP Engineer",
        "Directory Manager",
        "Directorate Assistant",
        "Directors",
        "Advisor",
        "Head Office Administrator",
        "Headhunter",
        "Head",
        "Presidential Aide",
        "Vice Principal",
        "Cooperative Manager",
        "Founders Associate",
        "CEOs Office",
        "ceo_assistant",
        "Account Executive",
        "Senior Engineer",
    ],
)
def test_titles_that_are_not_senior(title: str) -> None:
    assert not is_senior_title(title)


# --- estimated value --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "points"),
    [
        (None, 0),
        (-5, 0),
        (0, 0),
        (99_999, 0),
        (100_000, 10),
        (499_999, 10),
        (500_000, 15),
        (999_999, 15),
        (1_000_000, 20),
        (10**12, 20),
    ],
)
def test_estimated_value_thresholds(cents: int | None, points: int) -> None:
    assert points_of(ProspectFacts(estimated_value=cents), "estimated_value") == points


# --- stage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "points"),
    [
        ("new", 0),
        ("contacted", 5),
        ("qualified", 15),
        ("proposal", 25),
        ("negotiation", 35),
        ("won", 50),
        ("lost", -10),
    ],
)
def test_stage_points(stage: str, points: int) -> None:
    assert points_of(ProspectFacts(stage=stage), "stage") == points


def test_every_spec_stage_is_scored() -> None:
    assert set(STAGE_POINTS) == {
        "new",
        "contacted",
        "qualified",
        "proposal",
        "negotiation",
        "won",
        "lost",
    }


@pytest.mark.parametrize("stage", ["", "Won", "closed", " new"])
def test_unknown_stage_is_rejected(stage: str) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        score_prospect(ProspectFacts(stage=stage), NOW)


# --- recency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "points"),
    [
        (timedelta(0), 10),
        (timedelta(days=-3), 10),
        (timedelta(days=-400), 10),
        (timedelta(days=6, hours=23, minutes=59, seconds=59), 10),
        (timedelta(days=7), 5),
        (timedelta(days=7, seconds=1), 5),
        (timedelta(days=29, hours=23), 5),
        (timedelta(days=30), 0),
        (timedelta(days=365), 0),
    ],
)
def test_recency_uses_whole_days(ago: timedelta, points: int) -> None:
    prospect = ProspectFacts(last_contacted_at=NOW - ago)

    assert points_of(prospect, "recency") == points


def test_never_contacted_gets_no_recency_points() -> None:
    assert points_of(ProspectFacts(last_contacted_at=None), "recency") == 0


def test_recency_compares_instants_across_time_zones() -> None:
    # 6 days 23 hours ago, written in UTC+05:00.
    plus_five = timezone(timedelta(hours=5))
    contacted = (NOW - timedelta(days=6, hours=23)).astimezone(plus_five)

    assert points_of(ProspectFacts(last_contacted_at=contacted), "recency") == 10


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score_prospect(ProspectFacts(), datetime(2026, 3, 15, 12, 0))


def test_naive_last_contacted_at_is_rejected() -> None:
    prospect = ProspectFacts(last_contacted_at=datetime(2026, 3, 10))

    with pytest.raises(ValueError, match="last_contacted_at"):
        score_prospect(prospect, NOW)


# --- needs_scoring --------------------------------------------------------------------

FRESH = NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("scored_at", "updated_at", "rules_version", "expected"),
    [
        pytest.param(None, None, None, True, id="never scored"),
        pytest.param(None, FRESH, RULES_VERSION, True, id="version without a score time"),
        pytest.param(FRESH, None, None, True, id="score time without a version"),
        pytest.param(FRESH, None, RULES_VERSION, False, id="fresh"),
        pytest.param(FRESH, None, RULES_VERSION - 1, True, id="older rules"),
        pytest.param(FRESH, None, RULES_VERSION + 1, False, id="newer rules"),
        pytest.param(
            NOW - timedelta(hours=23, minutes=59), None, RULES_VERSION, False, id="just under 24h"
        ),
        pytest.param(NOW - SCORE_MAX_AGE, None, RULES_VERSION, True, id="exactly 24h"),
        pytest.param(NOW - timedelta(days=3), None, RULES_VERSION, True, id="days old"),
        pytest.param(
            FRESH, FRESH + timedelta(seconds=1), RULES_VERSION, True, id="updated after scoring"
        ),
        pytest.param(FRESH, FRESH, RULES_VERSION, False, id="updated at scoring time"),
        pytest.param(
            FRESH, FRESH - timedelta(days=5), RULES_VERSION, False, id="updated before scoring"
        ),
        pytest.param(
            NOW + timedelta(minutes=5),
            None,
            RULES_VERSION,
            False,
            id="scored in the future (clock skew)",
        ),
    ],
)
def test_needs_scoring(
    scored_at: datetime | None,
    updated_at: datetime | None,
    rules_version: int | None,
    expected: bool,
) -> None:
    decision = needs_scoring(
        scored_at=scored_at, updated_at=updated_at, rules_version=rules_version, now=NOW
    )

    assert decision is expected


@pytest.mark.parametrize(
    ("argument", "naive_value"),
    [
        ("now", datetime(2026, 3, 15, 12)),
        ("scored_at", datetime(2026, 3, 15, 11)),
        ("updated_at", datetime(2026, 3, 15, 11)),
    ],
)
def test_needs_scoring_rejects_naive_datetimes(argument: str, naive_value: datetime) -> None:
    arguments = {"scored_at": FRESH, "updated_at": FRESH, "rules_version": 1, "now": NOW}
    arguments[argument] = naive_value

    with pytest.raises(ValueError, match=argument):
        needs_scoring(**arguments)


def test_a_stored_score_is_the_result_only_with_the_same_total_breakdown_and_rules() -> None:
    result = score_prospect(ProspectFacts(email="ada@acme.com"), NOW)
    stored = {
        "total": result.total,
        "breakdown": result.breakdown_dict(),
        "rules_version": RULES_VERSION,
    }

    assert is_stored_score(result, **stored)
    assert not is_stored_score(result, **{**stored, "total": None})
    assert not is_stored_score(result, **{**stored, "total": result.total + 1})
    assert not is_stored_score(result, **{**stored, "breakdown": {"base": result.total}})
    assert not is_stored_score(result, **{**stored, "rules_version": RULES_VERSION - 1})
