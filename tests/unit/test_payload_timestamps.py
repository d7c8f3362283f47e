"""Payload timestamps are ISO-8601 text with a zone: never a number read as an epoch."""

from datetime import timedelta, timezone

import pytest

from crmjobs.errors import InvalidInput
from crmjobs.schemas import parse_payload


@pytest.mark.parametrize("value", ["1795917600", 1795917600, "1795917600.5", " 1795917600"])
def test_a_scheduled_time_that_is_a_number_is_invalid_input(value):
    with pytest.raises(InvalidInput, match="not a number"):
        parse_payload("scheduled-lead-scoring", {"scheduledTime": value})


def test_a_scheduled_time_in_iso_8601_is_read():
    payload = parse_payload("scheduled-lead-scoring", {"scheduledTime": "2026-12-01T02:00:00Z"})
    assert payload.scheduledTime.year == 2026


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # before datetime's range once in UTC (found by bench/fuzz.py)
        "9999-12-31T23:59:59-01:00",  # after it
        "0001-01-01T00:00:00Z",  # in range, but no local time east of UTC
        "9999-12-31T12:00:00Z",
    ],
)
def test_a_time_some_zone_cannot_hold_is_invalid_input(value):
    with pytest.raises(InvalidInput, match=r"between 0001-01-02 and 9999-12-30 \(UTC\)"):
        parse_payload("scheduled-lead-scoring", {"scheduledTime": value})


def test_the_first_and_last_whole_days_convert_to_every_zone():
    for value in ("0001-01-02T00:00:00Z", "9999-12-30T23:59:59Z"):
        payload = parse_payload("scheduled-lead-scoring", {"scheduledTime": value})
        for hours in (-14, 14):
            assert payload.scheduledTime.astimezone(timezone(timedelta(hours=hours)))
