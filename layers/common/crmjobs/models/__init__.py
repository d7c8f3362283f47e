"""PynamoDB models, one per table of template.yaml."""

from crmjobs.models.entities import (
    Agent,
    AgentExecution,
    Campaign,
    Contact,
    Delivery,
    KnowledgeItem,
    Prospect,
    Suppression,
    Workspace,
)
from crmjobs.models.runs import ConcurrencySlots, Run, TriggerKey

__all__ = [
    "Agent",
    "AgentExecution",
    "Campaign",
    "ConcurrencySlots",
    "Contact",
    "Delivery",
    "KnowledgeItem",
    "Prospect",
    "Run",
    "Suppression",
    "TriggerKey",
    "Workspace",
]
