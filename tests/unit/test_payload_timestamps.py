"""Payload timestamps are ISO-8601 text with a zone: never a number read as an epoch."""

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
