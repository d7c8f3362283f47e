"""PynamoDB plumbing: table names and region come from the environment when first used."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.models import Model

from crmjobs import config


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


def utcnow() -> datetime:
    return datetime.now(UTC)


class WorkspaceScoped(Model):
    """Tables keyed by (workspaceId, id): every read names its workspace, so no tenant
    can read another's records by id."""

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
            return cls.get(workspace_id, item_id, **kwargs)
        except cls.DoesNotExist:
            return None
