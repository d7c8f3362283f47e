"""Meetings: a workspace's meetings in a time window, soonest first (the starts-index, a
local index on the workspace's partition). New meetings are written with
agent_records.create_once."""

from __future__ import annotations

from crmjobs.models import Meeting


def between(workspace_id: str, start: str, end: str, limit: int) -> list[Meeting]:
    """Up to `limit` meetings starting in [start, end] (ISO-8601 UTC), soonest first."""
    return list(
        Meeting.by_start.query(
            workspace_id,
            Meeting.starts_at.between(start, end),
            limit=limit,
            page_size=limit,
        )
    )
