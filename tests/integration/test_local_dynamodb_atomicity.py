"""The local runtime's DynamoDB writes are atomic, as DynamoDB's are (moto's alone are not)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from crmjobs.domain.pacing import Reservation
from crmjobs.stores import send_rate
from crmjobs_local import dynamodb_atomicity
from crmjobs_local.stack import LocalRuntime

RATE = 1000.0


@pytest.fixture(scope="module")
def local_runtime(tmp_path_factory):
    with LocalRuntime(data_dir=tmp_path_factory.mktemp("atomicity"), in_process=True) as stack:
        yield stack


def _reserve_side_by_side(threads: int = 8, each: int = 40) -> list[Reservation]:
    """Reservations of one slot each from many threads at once, with the interpreter
    switching threads as often as it can (so requests interleave inside moto)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda _: send_rate.reserve(1, RATE), range(threads * each)))
    finally:
        sys.setswitchinterval(interval)


def test_concurrent_reservations_never_share_a_slot(local_runtime):
    slots = sorted(reservation.first_slot for reservation in _reserve_side_by_side())
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= 0.999 / RATE


def test_without_the_lock_moto_loses_updates(local_runtime):
    """The check above can fail: with moto's requests unserialized, some reservations get a
    slot another one already has."""
    dynamodb_atomicity.uninstall()
    try:
        lost = 0
        for _ in range(5):  # interleaving is likely, not certain: a few tries
            slots = [reservation.first_slot for reservation in _reserve_side_by_side()]
            lost = len(slots) - len(set(slots))
            if lost:
                break
    finally:
        dynamodb_atomicity.install()
    assert lost > 0
