"""The local runtime's DynamoDB: writes are atomic, as DynamoDB's are (moto's alone are not), and a
Query reads its partition only."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from crmjobs.domain.pacing import Reservation
from crmjobs.stores import send_rate
from crmjobs_local import moto_dynamodb
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
    moto_dynamodb.uninstall()
    try:
        lost = 0
        for _ in range(5):  # interleaving is likely, not certain: a few tries
            slots = [reservation.first_slot for reservation in _reserve_side_by_side()]
            lost = len(slots) - len(set(slots))
            if lost:
                break
    finally:
        moto_dynamodb.install()
    assert lost > 0


def test_a_query_reads_its_partition_only_with_the_same_results(local_runtime):
    """moto sorts and reads the whole table for each Query; the local runtime's reads the
    Query's partition, and finds what moto finds (ranges, pages, order, indexes)."""
    from moto.dynamodb.models.table import Table

    from crmjobs.models import Delivery
    from crmjobs.stores import deliveries

    for campaign in ("c-1", "c-2"):
        with Delivery.batch_write() as batch:
            for n in range(30):
                batch.save(Delivery(deliveries.campaign_key("ws-q", campaign), f"r{n:02d}@x.com",
                                    workspace_id="ws-q", campaign_id=campaign))

    def reads():
        key = deliveries.campaign_key("ws-q", "c-1")
        ranged = [row.email for row in Delivery.query(
            key, Delivery.email.between("r05@x.com", "r12@x.com"), consistent_read=True)]
        paged = deliveries.ledger_page("ws-q", "c-1", None, 7)
        backwards = [row.email for row in Delivery.query(key, scan_index_forward=False, limit=3)]
        return ranged, len(list(Delivery.query(key))), backwards, paged.cursor

    seen: list[int] = []
    all_items = Table.all_items

    def counted(table):
        items = all_items(table)
        seen.append(len(items))
        return items

    Table.all_items = counted
    try:
        local = reads()
        assert seen == []  # no Query read the whole table
        moto_dynamodb.uninstall()
        try:
            assert reads() == local
            assert max(seen) >= 60  # moto's own Query read both campaigns' rows
        finally:
            moto_dynamodb.install()
    finally:
        Table.all_items = all_items
    assert local[0] == [f"r{n:02d}@x.com" for n in range(5, 13)] and local[1] == 30
    assert local[2] == ["r29@x.com", "r28@x.com", "r27@x.com"]
