"""The account's shared send schedule in DynamoDB: every worker of every campaign reserves
its send slots from one item (domain/pacing.py says why this keeps each one-second window
under MaxSendRate). Under load a reservation is one conditional UpdateItem that moves the
next free slot on; after an idle spell, one more that restarts it at now."""

from __future__ import annotations

import time
from collections.abc import Callable

from pynamodb.exceptions import UpdateError

from crmjobs.domain.pacing import Reservation
from crmjobs.models.campaigns import SendSchedule
from crmjobs.stores.dynamodb import CONDITION_FAILED
from crmjobs.tasks import SYSTEM_WORKSPACE

SCHEDULE_ID = "ses-send-schedule"
#: How far ahead the earliest slot of a reservation is: more than the reservation's own
#: round trip, so a send is not already late when its slot arrives.
LEAD_S = 0.1


def _item() -> SendSchedule:
    return SendSchedule(SYSTEM_WORKSPACE, SCHEDULE_ID)


def reserve(count: int, rate: float, clock: Callable[[], float] = time.time) -> Reservation:
    """`count` consecutive slots, `1 / rate` apart, starting no earlier than LEAD_S from
    now (so the first slot is not already past when the answer arrives)."""
    duration = count / rate
    while True:
        earliest = clock() + LEAD_S
        schedule = _item()
        try:
            schedule.update(
                actions=[SendSchedule.next_free.add(duration)],
                condition=SendSchedule.next_free >= earliest,
            )
            return Reservation(float(schedule.next_free) - duration, count, rate)
        except UpdateError as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
        try:  # idle: the schedule is behind, so it restarts at the earliest slot
            _item().update(
                actions=[SendSchedule.next_free.set(earliest + duration)],
                condition=SendSchedule.next_free.does_not_exist()
                | (SendSchedule.next_free < earliest),
            )
            return Reservation(earliest, count, rate)
        except UpdateError as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
