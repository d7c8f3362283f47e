"""EventBridge Scheduler expressions: cron fields and wildcards, time zones across DST, rate, at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmjobs.domain.schedule_expressions import format_scheduled_time, next_fire_time
from crmjobs_local.schedules import substitute_context_attributes


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fire_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    times = []
    for _ in range(count):
        after = next_fire_time(expression, timezone, after)
        assert after is not None
        times.append(after)
    return times


# ---- cron in UTC


def test_daily_at_two_in_utc_fires_at_two_every_day():
    assert fire_times("cron(0 2 * * ? *)", "UTC", utc(2026, 11, 28, 23, 0), 3) == [
        utc(2026, 11, 29, 2, 0),
        utc(2026, 11, 30, 2, 0),
        utc(2026, 12, 1, 2, 0),
    ]


def test_fire_time_is_strictly_after_the_given_moment():
    assert next_fire_time("cron(0 2 * * ? *)", "UTC", utc(2026, 11, 29, 2, 0)) == utc(
        2026, 11, 30, 2, 0
    )
    assert next_fire_time("cron(0 2 * * ? *)", "UTC", utc(2026, 11, 29, 1, 59, 59, 999999)) == utc(
        2026, 11, 29, 2, 0
    )


def test_hourly_on_minute_zero():
    assert fire_times("cron(0 * * * ? *)", "UTC", utc(2026, 11, 29, 23, 30), 3) == [
        utc(2026, 11, 30, 0, 0),
        utc(2026, 11, 30, 1, 0),
        utc(2026, 11, 30, 2, 0),
    ]


def test_weekdays_at_nine_skip_the_weekend():
    # 2026-11-27 is a Friday.
    assert fire_times("cron(0 9 ? * MON-FRI *)", "UTC", utc(2026, 11, 27, 9, 0), 2) == [
        utc(2026, 11, 30, 9, 0),
        utc(2026, 12, 1, 9, 0),
    ]


def test_day_of_week_numbers_count_from_sunday():
    # 1 = SUN: 2026-11-29 is a Sunday.
    assert next_fire_time("cron(0 9 ? * 1 *)", "UTC", utc(2026, 11, 27)) == utc(2026, 11, 29, 9)
    assert next_fire_time("cron(0 9 ? * SUN *)", "UTC", utc(2026, 11, 27)) == utc(2026, 11, 29, 9)


def test_wrapping_day_of_week_range():
    # FRI-MON wraps over the weekend: Fri 27, Sat 28, Sun 29, Mon 30, then Fri 4 Dec.
    days = [t.day for t in fire_times("cron(0 0 ? * FRI-MON *)", "UTC", utc(2026, 11, 26), 5)]
    assert days == [27, 28, 29, 30, 4]


def test_lists_steps_and_month_names():
    assert fire_times("cron(0/20 8,17 ? JAN,JUL MON *)", "UTC", utc(2026, 12, 31), 4) == [
        utc(2027, 1, 4, 8, 0),
        utc(2027, 1, 4, 8, 20),
        utc(2027, 1, 4, 8, 40),
        utc(2027, 1, 4, 17, 0),
    ]


def test_last_day_of_month_with_l():
    assert fire_times("cron(0 12 L * ? *)", "UTC", utc(2028, 1, 31, 13), 2) == [
        utc(2028, 2, 29, 12, 0),  # a leap year
        utc(2028, 3, 31, 12, 0),
    ]


def test_nth_weekday_of_month_with_hash():
    # 6#3 = the third Friday: 20 Nov 2026, 18 Dec 2026.
    assert fire_times("cron(0 10 ? * 6#3 *)", "UTC", utc(2026, 11, 1), 2) == [
        utc(2026, 11, 20, 10, 0),
        utc(2026, 12, 18, 10, 0),
    ]


def test_fifth_weekday_skips_months_without_one():
    # 2#5 = a fifth Monday: 30 Nov 2026, then 29 Mar 2027 (none in Dec, Jan, Feb).
    assert fire_times("cron(0 0 ? * 2#5 *)", "UTC", utc(2026, 11, 1), 2) == [
        utc(2026, 11, 30),
        utc(2027, 3, 29),
    ]


def test_last_weekday_of_month_with_day_l():
    # 6L = the last Friday: 27 Nov 2026.
    assert next_fire_time("cron(0 0 ? * 6L *)", "UTC", utc(2026, 11, 1)) == utc(2026, 11, 27)


def test_nearest_weekday_with_w():
    # 15 Nov 2026 is a Sunday -> Monday 16; 1 Aug 2026 is a Saturday -> Monday 3 (stays in
    # the month); 31 May 2026 is a Sunday -> LW is Friday 29.
    assert next_fire_time("cron(0 0 15W * ? *)", "UTC", utc(2026, 11, 1)) == utc(2026, 11, 16)
    assert next_fire_time("cron(0 0 1W * ? *)", "UTC", utc(2026, 7, 31)) == utc(2026, 8, 3)
    assert next_fire_time("cron(0 0 LW * ? *)", "UTC", utc(2026, 5, 1)) == utc(2026, 5, 29)


def test_year_field_limits_and_ends_the_schedule():
    assert next_fire_time("cron(0 0 1 1 ? 2027-2028)", "UTC", utc(2026, 6, 1)) == utc(2027, 1, 1)
    assert next_fire_time("cron(0 0 1 1 ? 2020)", "UTC", utc(2026, 6, 1)) is None


# ---- cron in a time zone, across daylight-saving changes


def test_daily_two_am_new_york_across_the_spring_change_skips_the_missing_hour():
    # 8 Mar 2026: 02:00 does not exist in New York (clocks jump 02:00 -> 03:00).
    assert fire_times("cron(0 2 * * ? *)", "America/New_York", utc(2026, 3, 6), 3) == [
        utc(2026, 3, 6, 7, 0),  # EST, UTC-5
        utc(2026, 3, 7, 7, 0),
        utc(2026, 3, 9, 6, 0),  # EDT, UTC-4; 8 March skipped
    ]


def test_daily_two_am_new_york_across_the_autumn_change_keeps_local_time():
    assert fire_times("cron(0 2 * * ? *)", "America/New_York", utc(2026, 10, 31), 2) == [
        utc(2026, 10, 31, 6, 0),  # EDT
        utc(2026, 11, 1, 7, 0),  # EST from 1 Nov
    ]


def test_repeated_hour_on_fall_back_fires_once():
    # 1 Nov 2026: 01:30 happens twice in New York; the schedule fires at the first only.
    times = fire_times("cron(30 1 * * ? *)", "America/New_York", utc(2026, 10, 31, 12), 2)
    assert times == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


# ---- rate and at


def test_rate_counts_fixed_periods_from_the_start():
    start = utc(2026, 11, 29, 0, 0)
    assert next_fire_time("rate(5 minutes)", "UTC", utc(2026, 11, 29, 0, 7), start=start) == utc(
        2026, 11, 29, 0, 10
    )
    assert next_fire_time("rate(1 minute)", "UTC", start - timedelta(hours=1), start=start) == start


def test_rate_days_are_24_hours_across_dst():
    start = utc(2026, 3, 7, 12, 0)
    later = next_fire_time("rate(1 day)", "America/New_York", start, start=start)
    assert later == start + timedelta(hours=24)


def test_rate_without_start_is_one_period_later():
    after = utc(2026, 11, 29, 3, 0)
    assert next_fire_time("rate(2 hours)", "UTC", after) == utc(2026, 11, 29, 5, 0)


def test_at_reads_the_time_in_the_schedule_time_zone():
    expression = "at(2026-11-29T02:00:00)"
    assert next_fire_time(expression, "UTC", utc(2026, 11, 29)) == utc(2026, 11, 29, 2, 0)
    assert next_fire_time(expression, "Europe/Paris", utc(2026, 11, 29)) == utc(2026, 11, 29, 1)
    assert next_fire_time(expression, "UTC", utc(2026, 11, 29, 2, 0)) is None


# ---- invalid expressions


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 2 * * *)", "six fields"),
        ("cron(0 2 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 2 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(60 2 * * ? *)", "outside 0-59"),
        ("cron(0 24 * * ? *)", "outside 0-23"),
        ("cron(0 2 32 * ? *)", "outside 1-31"),
        ("cron(0 2 ? * 8 *)", "outside 1-7"),
        ("cron(0 2 ? FOO * *)", "not a number or a known name"),
        ("cron(0 2 ? * 3#1,6#3 *)", "# takes one day"),
        ("cron(0 2 ? * 3#6 *)", "1-5"),
        ("cron(0/0 2 * * ? *)", "positive"),
        ("cron(0 2 * * ? 1969)", "outside 1970-2199"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 weeks)", "minutes, hours or days"),
        ("rate(five minutes)", "minutes, hours or days"),
        ("at(2026-11-29 02:00)", "yyyy-mm-ddThh:mm:ss"),
        ("at(2026-02-30T02:00:00)", "yyyy-mm-ddThh:mm:ss"),
        ("daily at 2", "cron(...), rate(...) or at(...)"),
        ("", "cron(...), rate(...) or at(...)"),
    ],
)
def test_invalid_expressions_raise_value_error_with_the_reason(expression, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        next_fire_time(expression, "UTC", utc(2026, 11, 29))


def test_unknown_time_zone_is_a_value_error():
    with pytest.raises(ValueError, match="unknown time zone"):
        next_fire_time("cron(0 2 * * ? *)", "Mars/Olympus_Mons", utc(2026, 11, 29))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_time("cron(0 2 * * ? *)", "UTC", datetime(2026, 11, 29))


# ---- context attributes


def test_context_attributes_are_substituted_in_the_input():
    text = (
        '{"at": "<aws.scheduler.scheduled-time>", "id": "<aws.scheduler.execution-id>", '
        '"arn": "<aws.scheduler.schedule-arn>", "n": "<aws.scheduler.attempt-number>"}'
    )
    result = substitute_context_attributes(
        text,
        schedule_arn="arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly",
        scheduled_time=utc(2026, 11, 29, 2, 0),
        execution_id="d32c5kddcf5bb8c3",
        attempt=1,
    )
    assert result == (
        '{"at": "2026-11-29T02:00:00Z", "id": "d32c5kddcf5bb8c3", '
        '"arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly", "n": "1"}'
    )
    assert format_scheduled_time(datetime(2026, 11, 28, 21, 0, tzinfo=UTC)) == (
        "2026-11-28T21:00:00Z"
    )
