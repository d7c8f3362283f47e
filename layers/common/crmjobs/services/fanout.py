"""The paged fan-out that bulk tasks share (statemachines/paged_fanout.asl.json).

The state machine calls a family's page step with the state below; the step folds the
last Map's results into the totals and lists the next page of ids due for work, as
batches; the Map runs the family's batch step over them; the loop ends when a page step
finds no next page. Totals are plain counters, so each family names its own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crmjobs import config
from crmjobs.adapters.aws import client as aws_client
from crmjobs.runtime import Detached, RunContext, execution_name, finish_detached_run

#: Records listed per page (Step Functions' payload limit allows ~1000 ids).
PAGE_SIZE = 1000


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageState(Step):
    runId: str | None = None
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


def start_fanout(
    arn_variable: str, context: RunContext, workspace_id: str, now: datetime, force: bool = False
) -> Detached:
    """Start a bulk state machine for this attempt of the run; it records the outcome
    itself (its last step calls `finish_bulk_run`), so no Lambda waits for it."""
    name = execution_name(context.run_id, context.attempt)
    sfn = aws_client("stepfunctions")
    try:
        sfn.start_execution(
            stateMachineArn=config.require(arn_variable),
            name=name,
            input=json.dumps(
                {
                    "runId": context.run_id,
                    "workspaceId": workspace_id,
                    "now": now.isoformat(),
                    "force": force,
                }
            ),
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        pass  # a redelivery of this attempt: the execution is already running
    return Detached(execution=name)


class FinishInput(Step):
    """What the state machine's last step sends: its execution's name and the branch's
    result or error."""

    runId: str
    execution: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> FinishInput:
        """The finish step's input, or EventBridge's "Step Functions Execution Status
        Change" for an execution that ended without reaching its finish step."""
        if "detail" not in event:
            return cls.model_validate(event)
        detail = event["detail"]
        name = detail["name"]
        return cls(
            runId=name.split("-", 1)[0],
            execution=name,
            error={"Error": f"Execution{detail['status'].title()}", "Cause": detail.get("cause")},
        )


def finish_bulk_run(finish: FinishInput) -> None:
    if finish.error is not None:
        cause = finish.error.get("Cause") or ""
        finish_detached_run(
            finish.runId, finish.execution, error=f"{finish.error.get('Error')}: {cause[:500]}"
        )
        return
    result = finish.result or {}
    output = {**result.get("totals", {}), "pages": result["pages"], "listed": result["listed"]}
    finish_detached_run(finish.runId, finish.execution, output=output)
