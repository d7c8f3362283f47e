"""Pacing sends to the account's MaxSendRate across every worker of every campaign.

Workers reserve send slots from one shared schedule (a generic cell rate algorithm with no
burst): a reservation of n slots starts at max(the schedule's next free time, now) and
moves it on by n / rate, so slots are at least 1 / rate apart in whatever order workers
reserve. A send starts at its slot or at most `LATENESS_S` after it (a later one gives its
slot up and reserves again). Every send in a one-second window [t, t + 1) then has its slot
in (t - LATENESS_S, t + 1), which holds at most (1 + LATENESS_S) * rate slots: pacing at
max_send_rate / (1 + LATENESS_S) keeps every one-second window at or under MaxSendRate.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

#: How late after its slot a send may start (a thread's wake-up and the request leaving).
#: The pace gives up this share of the rate (3 %); a send later than that is not made then.
LATENESS_S = 0.03
#: How late the check right before a send may find it (the rest is for the call's start).
CHECK_LATENESS_S = LATENESS_S / 2
#: Guards the bound against floating-point rounding of slot times.
_MARGIN = 0.999


def paced_rate(max_send_rate: float) -> float:
    """The rate the shared schedule hands out slots at."""
    if max_send_rate <= 0:
        raise ValueError("the maximum send rate must be positive")
    return max_send_rate / (1 + LATENESS_S) * _MARGIN


@dataclass(frozen=True)
class Reservation:
    first_slot: float
    count: int
    rate: float

    def slot(self, index: int) -> float:
        return self.first_slot + index / self.rate

    @property
    def end(self) -> float:
        return self.first_slot + self.count / self.rate


def reserve(next_free: float | None, now: float, count: int, rate: float) -> Reservation:
    """The slots a reservation of `count` gets (its `end` is the schedule's next free time)."""
    start = now if next_free is None else max(next_free, now)
    return Reservation(start, count, rate)


def on_time(slot: float, now: float) -> bool:
    """Whether a send checked at `now` may still use its slot: half the tolerance is left
    for the time between this check and the request leaving (a thread switch, botocore
    building the request)."""
    return now <= slot + CHECK_LATENESS_S


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window) (what a rate limit counts)."""
    ordered = sorted(times)
    best = 0
    for index, start in enumerate(ordered):
        best = max(best, bisect_left(ordered, start + window, lo=index) - index)
    return best
