"""The paged fan-out that bulk tasks share (statemachines/paged_fanout.asl.json).

The state machine calls a family's page step with the state below; the step folds the
last Map's results into the totals and lists the next page of ids due for work, as
batches; the Map runs the family's batch step over them; the loop ends when a page step
finds no next page. Totals are plain counters, so each family names its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crmjobs.adapters.state_machines import run_to_completion
from crmjobs.runtime import RunContext

#: Records listed per page (Step Functions' payload limit allows ~1000 ids).
PAGE_SIZE = 1000


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageState(Step):
    workspaceId: str
    now: AwareDatetime
    force: bool = False
    cursor: dict[str, Any] | None = None
    started: bool = False
    done: bool = False
    pages: int = 0
    listed: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    results: list[dict[str, int]] = Field(default_factory=list)
    batches: list[list[str]] = Field(default_factory=list)


class BatchInput(Step):
    workspaceId: str
    now: AwareDatetime
    force: bool = False
    ids: list[str] = Field(max_length=100)


#: Lists one page: (ids due for work, records listed, cursor of the next page or None).
PageLister = Callable[[PageState], tuple[list[str], int, dict[str, Any] | None]]


def next_page(state: PageState, list_page: PageLister, batch_size: int) -> PageState:
    totals = Counter(state.totals)
    for result in state.results:
        totals.update(result)
    update: dict[str, Any] = {"totals": dict(totals), "results": [], "batches": []}
    if state.started and state.cursor is None:
        return state.model_copy(update={**update, "done": True})
    due, listed, cursor = list_page(state)
    return state.model_copy(
        update={
            **update,
            "started": True,
            "cursor": cursor,
            "pages": state.pages + 1,
            "listed": state.listed + listed,
            "batches": [due[i : i + batch_size] for i in range(0, len(due), batch_size)],
        }
    )


def run_fanout(
    arn_variable: str, context: RunContext, workspace_id: str, now: datetime, force: bool = False
) -> dict[str, int]:
    """Run a bulk state machine for one run attempt; its totals with pages and listed."""
    state = run_to_completion(
        arn_variable,
        name=f"{context.run_id}-{context.attempt}",
        execution_input={"workspaceId": workspace_id, "now": now.isoformat(), "force": force},
        time_budget=context.remaining_seconds(),
    )
    return {**state["totals"], "pages": state["pages"], "listed": state["listed"]}
