"""Agents: read one in a workspace, page the active ones (the status index, or one
workspace's partition), count them by status, pause one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crmjobs.errors import Conflict, NotFound
from crmjobs.models import Agent
from crmjobs.models.base import flag_unreadable
from crmjobs.stores.dynamodb import Page, conflict_on_failed_condition, query_page


def get(workspace_id: str, agent_id: str) -> Agent:
    """The agent (a consistent read); NotFound outside its workspace."""
    agent = Agent.get_in_workspace(workspace_id, agent_id, consistent_read=True)
    if agent is None:
        raise NotFound("agent not found")
    return agent


def active_page(workspace_id: str | None, cursor: dict[str, Any] | None, limit: int) -> Page[Agent]:
    """Up to `limit` active agents: of every workspace through the status index, or of one
    workspace from its own partition (no scan either way). An agent with a value that cannot
    be read comes back flagged (models.base.unreadable_fields), not as an error of the page."""
    if workspace_id is None:
        return with_status_page("active", cursor, limit)
    with flag_unreadable():
        return query_page(
            Agent.query, workspace_id, cursor, limit, filter_condition=Agent.status == "active"
        )


def with_status_page(status: str, cursor: dict[str, Any] | None, limit: int) -> Page[Agent]:
    """Up to `limit` agents of every workspace with this status (the status index)."""
    with flag_unreadable():
        return query_page(Agent.status_index.query, status, cursor, limit)


def pause(agent: Agent, reason: str, now: datetime) -> bool:
    """Pause an active agent with the reason; False when it is no longer active."""
    try:
        with conflict_on_failed_condition(f"agent {agent.id} is not active"):
            agent.update(
                actions=[
                    Agent.status.set("paused"),
                    Agent.status_reason.set(reason),
                    Agent.updated_at.set(now),
                ],
                condition=Agent.id.exists() & (Agent.status == "active"),
            )
    except Conflict:
        return False
    return True
