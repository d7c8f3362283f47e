"""PynamoDB plumbing: table names and region come from the environment when first used,
and the entity tables' records are read as other apps write them.

Other apps write the CRM's tables, so a record may hold a timestamp in another ISO-8601
form (`Z`, milliseconds, no fraction, an offset; a naive one is read as UTC), a number as
a numeric string, or a value nothing can read. `Timestamp` and `Number` read the former;
a record with a value that still cannot be read raises MalformedRecord (permanent: the run
fails naming the record and the field), except where a bulk step reads a page or a batch
inside `flag_unreadable()`: there such a record comes back with the value left unset and
named in `unreadable_fields`, so the step fails that one record and carries on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.constants import NULL, NUMBER, STRING
from pynamodb.exceptions import AttributeDeserializationError
from pynamodb.indexes import AllProjection
from pynamodb.models import Model

from crmjobs import config
from crmjobs.errors import MalformedRecord


class _EnvironmentMeta(type):
    """A Meta whose table name and region are read at use time (PynamoDB reconnects on change)."""

    table_env: str

    @property
    def table_name(cls) -> str:
        return config.require(cls.table_env)

    @property
    def region(cls) -> str:
        return config.region()


def table_meta(table_env: str) -> type:
    return _EnvironmentMeta("Meta", (), {"table_env": table_env})


def index_meta(index_name: str) -> type:
    """The Meta of a secondary index that projects every attribute."""
    return type("Meta", (), {"index_name": index_name, "projection": AllProjection()})


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoredDatetime(datetime):
    """A timestamp read from a table in another form than PynamoDB writes, with the text
    it was stored as: a write conditional on it compares that exact text. (Arithmetic and
    replace() give values without it.)"""

    stored: str | None = None


class Timestamp(UTCDateTimeAttribute):
    """An ISO-8601 timestamp: PynamoDB's own form, or any that datetime.fromisoformat
    reads (`Z`, fractions of any length, no fraction, offsets); a naive one is UTC."""

    def deserialize(self, value: str) -> datetime:
        try:
            return self._fast_parse_utc_date_string(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value[:80]!r} is not an ISO-8601 timestamp") from None
        stored = StoredDatetime.combine(parsed.date(), parsed.timetz())
        if stored.tzinfo is None:
            stored = stored.replace(tzinfo=UTC)
        stored.stored = value
        return stored

    def serialize(self, value: datetime) -> str:
        if isinstance(value, StoredDatetime) and value.stored is not None:
            return value.stored
        return super().serialize(value)


class Number(NumberAttribute):
    """A number, also when another app stored it as a numeric string ("500000")."""

    def get_value(self, value: dict[str, Any]) -> Any:
        if NUMBER not in value and STRING in value:
            return value[STRING]
        return super().get_value(value)

    def deserialize(self, value: str) -> Any:
        try:
            number = json.loads(value)
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"{value[:80]!r} is not a number")
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number


_flagging: ContextVar[bool] = ContextVar("flag_unreadable", default=False)


@contextmanager
def flag_unreadable() -> Iterator[None]:
    """Records read inside come back even with unreadable values (see unreadable_fields)."""
    token = _flagging.set(True)
    try:
        yield
    finally:
        _flagging.reset(token)


def _why_unreadable(attribute: Any, raw: dict[str, Any], error: Exception) -> str:
    if isinstance(error, AttributeDeserializationError):
        (kind, value), *_ = raw.items()
        shown = json.dumps(value, default=str)[:80]
        return f"stored as {kind} {shown}, which is not a {attribute.attr_type}"
    return str(error)


class ReadableModel(Model):
    """A table that other apps write too: its records are read as described above."""

    #: DynamoDB attribute name -> why its value could not be read.
    _unreadable: MappingProxyType = MappingProxyType({})

    @classmethod
    def _readable_part(
        cls, attribute_values: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The values that can be read, and why each other one cannot."""
        readable, problems = dict(attribute_values), {}
        for attribute in cls.get_attributes().values():
            raw = readable.get(attribute.attr_name)
            if not raw or NULL in raw:
                continue
            try:
                attribute.deserialize(attribute.get_value(raw))
            except (TypeError, ValueError) as exc:
                problems[attribute.attr_name] = _why_unreadable(attribute, raw, exc)
                del readable[attribute.attr_name]
        return readable, problems

    @classmethod
    def _instantiate(cls, attribute_values: dict[str, dict[str, Any]]):
        """A record as read by get, query, scan and batch_get."""
        try:
            return super()._instantiate(attribute_values)
        except (TypeError, ValueError):
            readable, problems = cls._readable_part(attribute_values)
            if not problems:
                raise
        record = super()._instantiate(readable)
        record._unreadable = MappingProxyType(problems)
        if not _flagging.get():
            check_readable(record)
        return record

    def deserialize(self, attribute_values: dict[str, dict[str, Any]]) -> None:
        """The record's values as an update or refresh returns them: an unreadable one is
        flagged, never raised (the write itself went through)."""
        try:
            super().deserialize(attribute_values)
        except (TypeError, ValueError):
            readable, problems = self._readable_part(attribute_values)
            if not problems:
                raise
            super().deserialize(readable)
            self._unreadable = MappingProxyType(problems)
        else:
            self._unreadable = MappingProxyType({})

    def describe(self) -> str:
        """The record as an error names it: its model and keys."""
        keys = [
            f"{attribute.attr_name} {getattr(self, name)}"
            for name, attribute in sorted(
                self.get_attributes().items(), key=lambda item: not item[1].is_hash_key
            )
            if attribute.is_hash_key or attribute.is_range_key
        ]
        return f"{type(self).__name__} ({', '.join(keys)})"


def unreadable_fields(record: ReadableModel) -> dict[str, str]:
    """The record's values that could not be read, by DynamoDB attribute name."""
    return dict(record._unreadable)


def check_readable(record: ReadableModel, *, required: bool = False) -> None:
    """MalformedRecord naming the record and the field when one of its values could not be
    read or (with `required`: a full read, not a projection) a required one is missing."""
    problems = unreadable_fields(record)
    if required:
        for name, attribute in record.get_attributes().items():
            if not attribute.null and attribute.default is None and getattr(record, name) is None:
                problems.setdefault(attribute.attr_name, "missing (it is required)")
    if problems:
        field, why = next(iter(problems.items()))
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MalformedRecord(f"{record.describe()}: field {field}: {why}{more}")


class WorkspaceScoped(ReadableModel):
    """Tables keyed by (workspaceId, id): every read names its workspace, so no tenant
    can read another's records by id."""

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)

    #: A whole record read by get_in_workspace must have every required field, or it
    #: raises MalformedRecord naming the field: on for the models whose services take what
    #: they read as complete; off where the store checks after reading (prospects,
    #: knowledge items) or a reader takes an incomplete record as it is (an unsubscribe
    #: opts out a contact whatever else it lacks).
    complete_on_get: ClassVar[bool] = False

    def unchanged_since_read(self):
        """Condition for a write: the record still exists and nobody edited it since it was
        read (its updatedAt, which the app sets on every edit)."""
        model = type(self)
        return model.id.exists() & (
            model.updated_at.does_not_exist()
            if self.updated_at is None
            else model.updated_at == self.updated_at
        )

    @classmethod
    def get_in_workspace(cls, workspace_id: str, item_id: str, **kwargs):
        """The record, or None when it does not exist in this workspace."""
        try:
            record = cls.get(workspace_id, item_id, **kwargs)
        except cls.DoesNotExist:
            return None
        if cls.complete_on_get and kwargs.get("attributes_to_get") is None:
            check_readable(record, required=True)
        return record
