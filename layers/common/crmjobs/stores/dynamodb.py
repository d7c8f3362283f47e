"""What the stores share about DynamoDB: a failed write condition becomes Conflict, and a
query page carries the cursor of the next one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from crmjobs.errors import Conflict

CONDITION_FAILED = "ConditionalCheckFailedException"

T = TypeVar("T")


@contextmanager
def conflict_on_failed_condition(message: str) -> Iterator[None]:
    """Inside the block, a write whose condition did not hold raises Conflict(message);
    any other DynamoDB error passes through."""
    try:
        yield
    except (PutError, UpdateError, DeleteError) as exc:
        if exc.cause_response_code == CONDITION_FAILED:
            raise Conflict(message) from None
        raise


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a query; `cursor` is None on the last page."""

    items: list[T]
    cursor: dict[str, Any] | None


def query_page(
    query: Callable[..., Iterable[T]],
    hash_key: str,
    cursor: dict[str, Any] | None,
    limit: int,
    **options: Any,
) -> Page[T]:
    """One page of up to `limit` items of a Query (a model's or an index's `query`; never a
    Scan), continuing from `cursor`; `options` are the query's own (attributes, filter)."""
    result = query(hash_key, last_evaluated_key=cursor, page_size=limit, limit=limit, **options)
    items = list(result)
    return Page(items, result.last_evaluated_key)
