"""When an agent's config.schedule is due (process-active-agents' rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmjobs.domain.agents import parse_config
from crmjobs.domain.schedule_expressions import latest_fire_time
from crmjobs.services.agent_scheduling import due_time

LOOKBACK = timedelta(minutes=15)


def _due(schedule, now):
    return due_time(parse_config({"schedule": schedule}), now, LOOKBACK)


def test_a_schedule_is_due_for_its_latest_time_in_the_lookback():
    now = datetime(2026, 12, 1, 8, 7, tzinfo=UTC)
    paris = {"expression": "cron(0 9 * * ? *)", "timezone": "Europe/Paris"}
    assert _due(paris, now) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert _due(paris, now + timedelta(minutes=20)) is None  # 09:00 Paris is 27 min ago
    assert _due({"expression": "cron(0 9 * * ? *)"}, now) is None  # 09:00 UTC is ahead
    assert _due({"expression": "rate(5 minutes)"}, now) == datetime(2026, 12, 1, 8, 5, tzinfo=UTC)
    assert due_time(parse_config({}), now, LOOKBACK) is None


def test_rate_schedules_count_from_a_fixed_anchor():
    """Every evaluation of rate(1 hour) sees the same times, whenever it runs."""
    for minute in (1, 9, 14):
        now = datetime(2026, 12, 1, 10, minute, tzinfo=UTC)
        assert latest_fire_time(
            "rate(1 hour)", "UTC", after=now - LOOKBACK, not_after=now
        ) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_a_bad_schedule_says_why():
    now = datetime(2026, 12, 1, 8, 7, tzinfo=UTC)
    with pytest.raises(ValueError, match="outside 0-59"):
        _due({"expression": "cron(61 * * * ? *)"}, now)
    with pytest.raises(ValueError, match="unknown time zone"):
        _due({"expression": "cron(0 9 * * ? *)", "timezone": "Mars/Olympus"}, now)
