"""Campaign rules without I/O: audience screening, rendering, tokens, statuses, pacing."""

from __future__ import annotations

import email
import email.policy
import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from crmjobs.domain import pacing
from crmjobs.domain.audience import (
    Audience,
    Person,
    UnknownAudience,
    contact_display_name,
    parse_audience,
    prospect_in_audience,
    screen_page,
    split_name,
)
from crmjobs.domain.campaigns import (
    CampaignStatus,
    ContentError,
    FireDecision,
    LedgerCounts,
    check_sendable,
    decide_fire,
    final_status,
)
from crmjobs.domain.rendering import (
    RecipientFields,
    UnknownPlaceholder,
    Unsubscribe,
    build_message,
    check_placeholders,
    decode_tag_value,
    dedupe_key_of,
    dedupe_tag,
    encode_tag_value,
    message_tags,
    render_html,
    render_text,
)
from crmjobs.domain.unsubscribe_token import InvalidToken, UnsubscribeClaim, sign, verify


def person(n: int, email: str, *, opted_out: bool = False, kind: str = "prospect") -> Person:
    return Person(kind, f"p-{n}", email, f"P {n}", "P", str(n), "Acme", "CTO", opted_out)


# --------------------------------------------------------------------------- audience


@pytest.mark.parametrize(
    ("audience", "stage", "email", "included"),
    [
        (Audience.ALL_LEADS, "won", "a@x.io", True),
        (Audience.ALL_LEADS, "new", None, False),
        (Audience.ALL_LEADS, "new", "  ", False),
        (Audience.NEW_LEADS, "new", "a@x.io", True),
        (Audience.NEW_LEADS, None, "a@x.io", True),
        (Audience.NEW_LEADS, "contacted", "a@x.io", False),
        (Audience.QUALIFIED_LEADS, "proposal", "a@x.io", True),
        (Audience.QUALIFIED_LEADS, "negotiation", "a@x.io", True),
        (Audience.QUALIFIED_LEADS, "new", "a@x.io", False),
        (Audience.ALL_CONTACTS, "new", "a@x.io", False),
    ],
)
def test_audience_membership(audience, stage, email, included):
    assert prospect_in_audience(audience, stage, email) is included


def test_unknown_audience_is_named():
    with pytest.raises(UnknownAudience, match="'vip_leads'"):
        parse_audience("vip_leads")
    assert parse_audience("all_contacts").recipient_type == "contact"


def test_names():
    assert contact_display_name(None, "") == "there"
    assert contact_display_name(" Ada ", "Lovelace") == "Ada Lovelace"
    assert split_name("Grace Brewster Hopper") == ("Grace", "Brewster Hopper")
    assert split_name(None) == ("", "")


def test_screening_counts_each_reason():
    people = [
        person(1, "Ada@Example.com "),
        person(2, " ada@example.COM"),  # same address, another record
        person(3, "bob@example.com", opted_out=True),
        person(4, "not an address"),
        person(5, "carol@example.com"),  # suppressed
        person(6, "dan@example.com"),
    ]
    result = screen_page(people, {}, {"carol@example.com"})
    assert [p.recipient_id for p in result.new] == ["p-1", "p-6"]
    assert dict(result.excluded) == {"duplicate": 1, "optedOut": 1, "invalid": 1, "suppressed": 1}


def test_repeated_page_counts_the_same():
    page = [person(1, "a@example.com"), person(2, "A@example.com"), person(3, "b@example.com")]
    first = screen_page(page, {"b@example.com": "prospect:p-9"}, set())
    listed = {p.address: p.key for p in first.new} | {"b@example.com": "prospect:p-9"}
    # Again after a crash, and after p-1 unsubscribed (suppressed and opted out).
    again_page = [person(1, "a@example.com", opted_out=True), *page[1:]]
    again = screen_page(again_page, listed, {"a@example.com"})
    assert [p.recipient_id for p in first.new] == ["p-1"]
    assert again.new == [] and again.already_listed == 1
    assert first.excluded == again.excluded == {"duplicate": 2}


# --------------------------------------------------------------------------- rendering

FIELDS = RecipientFields(
    name="<script>alert(1)</script>",
    first_name="Ada & Co",
    last_name="L",
    company='"Acme"',
    title="CTO",
    email="ada@example.com",
)


def test_unknown_placeholders_are_named():
    with pytest.raises(UnknownPlaceholder, match=r"\{\{nickname\}\}, \{\{phone\}\}"):
        check_placeholders("Hi {{ nickname }}", "call {{phone}} at {{company}}")
    check_placeholders("{{name}} {{firstName}} {{lastName}} {{company}} {{title}} {{email}}")


def test_values_are_escaped_in_html_and_plain_in_text():
    body = "Hi {{name}},\n\nNews for {{company}} <b>now</b>.\n{{firstName}}"
    html_part = render_html(body, FIELDS)
    assert "<script>" not in html_part
    assert "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;,</p>" in html_part
    assert "<p>News for &quot;Acme&quot; &lt;b&gt;now&lt;/b&gt;.</p>" in html_part
    assert "<p>Ada &amp; Co</p>" in html_part
    assert html_part.count("<p>") == 3  # blank lines make no paragraph
    text = render_text(body, FIELDS)
    assert text.startswith('Hi <script>alert(1)</script>,\n\nNews for "Acme"')


def test_message_is_multipart_with_one_click_unsubscribe():
    unsubscribe = Unsubscribe("https://crm.example/unsubscribe?token=t1", "unsub@crm.example")
    message = build_message(
        sender="news@crm.example",
        to="ada@example.com",
        subject="Hello {{name}}\r\nBcc: x@evil.example",
        body="Hi {{name}}\nBye",
        fields=FIELDS,
        unsubscribe=unsubscribe,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == "Hello <script>alert(1)</script> Bcc: x@evil.example"
    assert parsed["Bcc"] is None
    assert parsed["List-Unsubscribe"] == (
        "<https://crm.example/unsubscribe?token=t1>, <mailto:unsub@crm.example?subject=unsubscribe>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html_part = (part.get_content() for part in parsed.iter_parts())
    assert "Hi <script>alert(1)</script>" in text and "https://crm.example/unsubscribe" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_part and "<script>" not in html_part


def test_tags_are_legal_and_reversible():
    for value in ("ws-1", "a.b_c-d", "x__y..z_", "_d"):
        encoded = encode_tag_value(value)
        assert decode_tag_value(encoded) == value
        assert encoded.replace("_", "").replace("-", "").isalnum()
    tags = message_tags("ws.1", "c_1", "ada@example.com")
    assert tags["workspace"] == "ws_d1" and tags["campaign"] == "c_u1"
    assert len(tags["recipient"]) == 32 and "@" not in tags["recipient"]
    with pytest.raises(ValueError):
        decode_tag_value("ws_x")
    assert "dedupe" not in tags


def test_a_direct_emails_tags_carry_its_dedupe_key():
    for key in ("exec-1:tooluse_9", "a/b+c=d ü", "x" * 192):
        tags = message_tags("ws-1", "direct", "ada@example.com", key)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", tags["dedupe"])  # SES's tag values
        assert dedupe_key_of(tags["dedupe"]) == key
    assert dedupe_tag("x" * 193) is None  # longer than a tag value may be: no tag
    assert "dedupe" not in message_tags("ws-1", "direct", "ada@example.com", "x" * 193)
    assert dedupe_tag("") is None and dedupe_key_of("%%%") is None


# --------------------------------------------------------------------------- tokens

KEY = b"k" * 32
CLAIM = UnsubscribeClaim("ws-1", "c-1", "contact", "ct-1", "ada@example.com")


def test_token_round_trip():
    assert verify(sign(CLAIM, KEY), KEY) == CLAIM


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: sign(UnsubscribeClaim("ws-2", "c-1", "contact", "ct-1", "x@y.z"), b"x" * 32),
        lambda token: token.replace(token.split(".")[1], sign(
            UnsubscribeClaim("ws-2", "c-1", "contact", "ct-1", "ada@example.com"), KEY
        ).split(".")[1]),
        lambda token: "v2" + token[2:],
        lambda token: "garbage",
        lambda token: "v1.!!!.???",
        lambda token: "",
    ],
)
def test_forged_tokens_are_refused(forge):
    with pytest.raises(InvalidToken):
        verify(forge(sign(CLAIM, KEY)), KEY)


# --------------------------------------------------------------------------- statuses


def test_sendable_content():
    check_sendable("all_leads", "Hi", "Body {{name}}")
    for audience, subject, body, message in [
        ("everyone", "Hi", "B", "unknown audience 'everyone'"),
        ("all_leads", "", "B", "no subject"),
        ("all_leads", None, None, "no subject and no body"),
        ("all_leads", "Hi {{nick}}", "B", r"\{\{nick\}\}"),
    ]:
        with pytest.raises(ContentError, match=message):
            check_sendable(audience, subject, body)


def test_fire_only_when_still_scheduled_for_that_time():
    at = datetime(2026, 5, 1, 9, tzinfo=UTC)
    assert decide_fire("scheduled", at, at) is FireDecision.SEND
    assert decide_fire("scheduled", at + timedelta(hours=1), at) is FireDecision.STALE
    for status in ("draft", "paused", "active", "completed"):
        assert decide_fire(status, at, at) is FireDecision.STALE


def test_final_status():
    assert final_status(LedgerCounts({"sent": 3, "pending": 1})) is None
    assert final_status(LedgerCounts({"sent": 3, "sending": 1})) is None
    assert final_status(LedgerCounts({"sent": 1, "failed": 9})) is CampaignStatus.COMPLETED
    assert final_status(LedgerCounts({"unconfirmed": 1, "failed": 9})) is CampaignStatus.COMPLETED
    assert final_status(LedgerCounts({"failed": 9})) is CampaignStatus.FAILED
    counts = LedgerCounts({"sent": 2, "failed": 1, "unconfirmed": 1, "pending": 1})
    assert counts.counters() == {
        "recipients": 5, "pending": 1, "sent": 2, "failed": 1, "unconfirmed": 1
    }


# --------------------------------------------------------------------------- pacing


def test_slots_from_many_workers_never_exceed_the_rate():
    """Workers reserve chunks in random order, pass the check up to CHECK_LATENESS_S late
    and call up to LATENESS_S late: no window of one second holds more than the maximum
    rate, and the rate is nearly reached."""
    rng = random.Random(7)
    max_rate = 200
    rate = pacing.paced_rate(max_rate)
    next_free, now, sends = None, 1000.0, []
    while len(sends) < 5000:
        now += rng.uniform(0, 0.02)
        reservation = pacing.reserve(next_free, now, rng.randint(1, 12), rate)
        next_free = reservation.end
        for index in range(reservation.count):
            slot = reservation.slot(index)
            checked = slot + rng.uniform(0, pacing.CHECK_LATENESS_S)
            assert pacing.on_time(slot, checked)
            # the call leaves within the rest of the tolerance
            sends.append(checked + rng.uniform(0, pacing.LATENESS_S - pacing.CHECK_LATENESS_S))
    assert pacing.max_in_window(sends) <= max_rate
    achieved = len(sends) / (max(sends) - min(sends))
    assert achieved >= 0.96 * max_rate  # the ceiling is 1 / (1 + LATENESS_S)


def test_idle_schedule_does_not_burst():
    rate = pacing.paced_rate(10)
    reservation = pacing.reserve(next_free=5.0, now=100.0, count=3, rate=rate)
    assert reservation.first_slot == 100.0
    assert reservation.slot(1) - reservation.slot(0) == pytest.approx(1 / rate)
    assert pacing.on_time(100.0, 100.0 + pacing.CHECK_LATENESS_S)
    assert not pacing.on_time(100.0, 100.0 + pacing.CHECK_LATENESS_S + 0.001)


def test_max_in_window():
    assert pacing.max_in_window([0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert pacing.max_in_window([]) == 0
