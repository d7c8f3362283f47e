"""The local runtime's DynamoDB: writes are atomic, as DynamoDB's are (moto's alone are not), and a
Query reads its partition only."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from crmjobs.domain.pacing import Reservation
from crmjobs.stores import deliveries, send_rate
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


def _claims_meeting_inside_moto(monkeypatch, address: str, wait: float) -> int:
    """Two claims of one recipient at once, each held inside moto, right after it has read the
    row, until the other has read it too (or for `wait` seconds, when the other cannot get
    there): how many of the two claimed the row."""
    from moto.dynamodb.models.table import Table

    meeting = threading.Barrier(2, timeout=wait)
    get_item = Table.get_item

    def read_then_meet(table, hash_key, range_key=None, *args, **kwargs):
        item = get_item(table, hash_key, range_key, *args, **kwargs)
        if range_key is not None and range_key.value == address:
            try:
                meeting.wait()
            except threading.BrokenBarrierError:
                pass
        return item

    monkeypatch.setattr(Table, "get_item", read_then_meet)
    now = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=2) as pool:
        claims = pool.map(
            lambda _: deliveries.claim([deliveries.row("ws-a", "c-a", address)], now), range(2)
        )
        return sum(len(claimed) for claimed in claims)


def test_two_claims_of_one_row_inside_moto_at_once_one_wins(local_runtime, monkeypatch):
    assert _claims_meeting_inside_moto(monkeypatch, "once@x.com", wait=0.5) == 1


def test_without_the_lock_both_claims_win(local_runtime, monkeypatch):
    """The check above can fail: with moto's requests unserialized, both claims read the row
    before either writes it, and both find it claimable."""
    from moto.dynamodb.responses import DynamoHandler

    moto_dynamodb.uninstall()
    try:
        assert DynamoHandler.call_action.__name__ == "call_action"  # the lock is out
        assert _claims_meeting_inside_moto(monkeypatch, "twice@x.com", wait=30) == 2
    finally:
        moto_dynamodb.install()


def test_a_query_reads_its_partition_only_with_the_same_results(local_runtime):
    """moto sorts and reads the whole table for each Query; the local runtime's reads the
    Query's partition, and finds what moto finds (ranges, pages, order, indexes)."""
    from moto.dynamodb.models.table import Table

    from crmjobs.models import Delivery

    for campaign in ("c-1", "c-2"):
        with Delivery.batch_write() as batch:
            for n in range(30):
                batch.save(
                    Delivery(
                        deliveries.campaign_key("ws-q", campaign),
                        f"r{n:02d}@x.com",
                        workspace_id="ws-q",
                        campaign_id=campaign,
                    )
                )

    def reads():
        key = deliveries.campaign_key("ws-q", "c-1")
        ranged = [
            row.email
            for row in Delivery.query(
                key, Delivery.email.between("r05@x.com", "r12@x.com"), consistent_read=True
            )
        ]
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
