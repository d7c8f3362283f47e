"""The documented limits of what a run carries, in one place: the client (and so the HTTP
API, which triggers through it) checks a trigger's options and payload against them, and
the task runtime checks every received message, so nothing reaches DynamoDB that it
would refuse (an item holds at most 400 KB, a key at most 2,048 bytes).

Breaking a limit is InvalidInput, whose message names the limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from crmjobs.errors import InvalidInput
from crmjobs.schemas import EntityId

#: Tags of one run, and the characters of one tag (not blank).
MAX_TAGS = 10
MAX_TAG_LENGTH = 128
#: Characters of an idempotency key (the client's, or a plain message's attribute).
MAX_IDEMPOTENCY_KEY_LENGTH = 256
#: A payload as compact JSON (UTF-8). Ten of them fit one SQS batch (1 MiB), and a run
#: record keeps room for its output under DynamoDB's 400 KB item limit.
MAX_PAYLOAD_BYTES = 64 * 1024
#: A run's output as JSON; a larger one fails the run (InvalidInput) instead of its write.
MAX_OUTPUT_BYTES = 256 * 1024
#: A message body: a payload in the client's envelope ({"runId", "payload"}).
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 512
#: Whole seconds a trigger may be delayed (a year).
MAX_DELAY_SECONDS = 365 * 24 * 3600
#: Run ids (the ledger's are `run_` + 32 hex digits): what an envelope or a lookup may name.
MAX_RUN_ID_LENGTH = 128
_RUN_ID = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_RUN_ID_LENGTH}}}$")
_ENTITY_IDS = TypeAdapter(EntityId)


def json_bytes(value: Any) -> int:
    """The size of a value as the ledger and the queues carry it: compact JSON, UTF-8."""
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def check_tags(tags: Any) -> tuple[str, ...]:
    """The distinct tags, in order; a bare string (which would be split into letters), a
    non-string, a blank or too long tag, or too many of them are InvalidInput."""
    if isinstance(tags, str | bytes) or not isinstance(tags, Sequence | set | frozenset):
        raise InvalidInput("tags must be a list of strings, not a single string")
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInput("a tag must be a non-blank string")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f"a tag may be at most {MAX_TAG_LENGTH} characters, got {len(tag):,}"
            )
    distinct = tuple(dict.fromkeys(tags))
    if len(distinct) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per run, got {len(distinct)}")
    return distinct


def check_idempotency_key(key: Any) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise InvalidInput("an idempotency key must be a non-empty string")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"an idempotency key may be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"got {len(key):,}"
        )
    return key


def delay_of(value: Any) -> timedelta:
    """A trigger's delay: None, whole seconds (an int, or a float without a fraction) or a
    timedelta of whole seconds, from 0 to MAX_DELAY_SECONDS. A fraction is refused, not
    rounded: SQS and the schedules deliver whole seconds only."""
    if value is None:
        return timedelta(0)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidInput(f"delay must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise InvalidInput(f"delay must be whole seconds, got {seconds}")
    if not 0 <= seconds <= MAX_DELAY_SECONDS:
        raise InvalidInput(f"delay must be between 0 and {MAX_DELAY_SECONDS:,} seconds")
    return timedelta(seconds=int(seconds))


def check_payload_size(payload: Any) -> None:
    size = json_bytes(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidInput(
            f"the payload is {size:,} bytes as JSON; at most {MAX_PAYLOAD_BYTES:,} bytes"
        )


def check_output_size(output: Any) -> None:
    size = json_bytes(output)
    if size > MAX_OUTPUT_BYTES:
        raise InvalidInput(
            f"the run's output is {size:,} bytes as JSON; at most {MAX_OUTPUT_BYTES:,} bytes"
        )


def is_run_id(value: Any) -> bool:
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def is_entity_id(value: Any) -> bool:
    """A workspace or record id as the payload models accept it."""
    try:
        _ENTITY_IDS.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True
