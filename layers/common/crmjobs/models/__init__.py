"""PynamoDB models, one per table of template.yaml."""

from crmjobs.models.agents import (
    Agent,
    AgentExecution,
    AgentHealthRecord,
    ExecutionRound,
    Meeting,
    ToolCallRecord,
)
from crmjobs.models.campaigns import Campaign, Delivery, Suppression
from crmjobs.models.entities import Contact, KnowledgeItem, Prospect, Workspace
from crmjobs.models.runs import ConcurrencySlots, Run, TriggerKey

__all__ = [
    "Agent",
    "AgentExecution",
    "AgentHealthRecord",
    "Campaign",
    "ConcurrencySlots",
    "Contact",
    "Delivery",
    "ExecutionRound",
    "KnowledgeItem",
    "Meeting",
    "Prospect",
    "Run",
    "Suppression",
    "ToolCallRecord",
    "TriggerKey",
    "Workspace",
]
