"""The task registry: every task's name, attempts, scope and queue settings, in one place.

The payload models live in `crmjobs.schemas`; the service functions are bound in each
function's handler, so importing the registry stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Workspace id used for runs of system-wide tasks (real ids may not start with "_").
SYSTEM_WORKSPACE = "_system"

#: One attempt may run at most this long (spec); queues hide a message 6x longer.
TASK_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class TaskSpec:
    name: str
    family: str
    attempts: int

    @property
    def max_receive_count(self) -> int:
        """The queue's redrive limit: one receive more than the attempts, so the delivery
        after a lost last attempt (a timeout or crash) reaches the runtime, which records
        the run FAILED and dead-letters the message itself. SQS's redrive stays the net
        for messages the runtime never sees."""
        return self.attempts + 1

    @property
    def resource_prefix(self) -> str:
        """`score-lead` -> `ScoreLead`, the logical-id prefix in template.yaml."""
        return "".join(part.capitalize() for part in self.name.split("-"))


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("score-lead", "lead-scoring", 3),
        TaskSpec("bulk-score-leads", "lead-scoring", 2),
        TaskSpec("scheduled-lead-scoring", "lead-scoring", 3),
        TaskSpec("index-document", "documents", 3),
        TaskSpec("bulk-index-documents", "documents", 2),
        TaskSpec("reindex-all-documents", "documents", 1),
        TaskSpec("send-campaign", "campaigns", 2),
        TaskSpec("schedule-campaign", "campaigns", 3),
        TaskSpec("execute-agent", "agents", 2),
        TaskSpec("process-active-agents", "agents", 3),
        TaskSpec("scheduled-agent-health-check", "agents", 3),
    )
}


class UnknownTask(ValueError):
    """No task has this name."""


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
