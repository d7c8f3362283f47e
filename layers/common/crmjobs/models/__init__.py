"""PynamoDB models, one per table of template.yaml.

`from crmjobs.models import Prospect` imports only the module that defines it (PEP 562), so
a function's cold start pays for the tables it uses, not for all of them.
"""

from importlib import import_module

_MODULE_OF = {
    "Agent": "agents",
    "AgentExecution": "agents",
    "AgentHealthRecord": "agents",
    "ExecutionRound": "agents",
    "Meeting": "agents",
    "ToolCallRecord": "agents",
    "AudienceEntry": "campaigns",
    "Campaign": "campaigns",
    "Delivery": "campaigns",
    "Suppression": "campaigns",
    "Contact": "entities",
    "KnowledgeItem": "entities",
    "Prospect": "entities",
    "Workspace": "entities",
    "ConcurrencySlots": "runs",
    "Run": "runs",
    "TriggerKey": "runs",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
