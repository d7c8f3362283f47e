"""DynamoDB's behaviour, where moto's differs, for the moto that runs in this process.

Atomicity: DynamoDB applies each request to an item atomically: two UpdateItems that ADD to
one number both count, and of two conditional writes on one item only one can find the
condition true. moto's DynamoDB backend is plain Python with no lock, so requests from two
threads can interleave: both read the item, both write it, and one update is lost. This
was measured in the local runtime: two batch workers reserved the same send slots from the
shared send schedule and made 38 sends in one second at a rate of 20. So the local runtime
runs moto's DynamoDB requests one at a time, which is the atomicity DynamoDB gives.

Query cost: DynamoDB reads a Query's partition only; moto sorts every item of the table
and then looks at each, for every Query (measured: a campaign batch's two range Queries of
100 rows took tens of milliseconds once the deliveries table held 40,000 items, holding
the lock above, so other workers' sends missed their slots). A Query of a table's own key
here looks at its partition's items only, with the same results.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()
_install_lock = threading.Lock()
_originals: dict[str, Any] = {}
_installs = 0


def install() -> None:
    """Serialize moto's DynamoDB requests and make its Queries read their partition only
    (counted: each install needs its uninstall)."""
    global _installs
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    with _install_lock:
        _installs += 1
        if _installs > 1:
            return
        call_action = _originals["call_action"] = DynamoHandler.__dict__["call_action"]
        query = _originals["query"] = Table.__dict__["query"]

        def serialized_call_action(self: Any) -> Any:
            with _lock:
                return call_action(self)

        def partition_query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
            if index_name is not None or hash_key is None or not table.range_key_attr:
                return query(table, hash_key, *args, **kwargs)
            partition = table.items.get(hash_key, {})
            with _lock:  # no other request runs: the table can show the query its partition
                table.all_items = lambda: list(partition.values())  # the query sorts them
                try:
                    return query(table, hash_key, *args, **kwargs)
                finally:
                    del table.all_items

        DynamoHandler.call_action = serialized_call_action
        Table.query = partition_query


def uninstall() -> None:
    global _installs
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    with _install_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs == 0:
            DynamoHandler.call_action = _originals.pop("call_action")
            Table.query = _originals.pop("query")
