"""The paged fan-out that bulk tasks share (statemachines/paged_fanout.asl.json).

The state machine calls a family's page step with the state below; the step folds the
last Map's results into the totals and lists the next page of ids due for work, as
batches; the Map runs the family's batch step over them; the loop ends when a page step
finds no next page. Totals are plain counters, so each family names its own.

An attempt of a bulk run is a chain of executions (crmjobs.domain.execution_chains): once
an execution has listed its pages-per-execution (a DefinitionSubstitution sized so its
history stays well below Step Functions' 25,000 events), the page step starts the next
execution with the cursor and the running totals instead of listing, and the execution
ends. Only the chain's last execution reaches the finish step, which records the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crmjobs import concurrency, config, ledger
from crmjobs.adapters import state_machines
from crmjobs.adapters.state_machines import ExecutionExists
from crmjobs.domain.execution_chains import ChainedExecution
from crmjobs.observability import logger
from crmjobs.runtime import Detached, RunContext, finish_detached_run

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
    #: The page step started the chain's next execution, which goes on from `cursor`.
    continued: bool = False
    pages: int = 0
    #: Pages listed by the current execution of the chain.
    executionPages: int = 0
    listed: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    results: list[dict[str, int]] = Field(default_factory=list)
    batches: list[list[str]] = Field(default_factory=list)


class PageStep(Step):
    """The page step's input: the state, and what the execution says of itself."""

    state: PageState
    execution: str
    stateMachine: str
    pagesPerExecution: int = Field(ge=1)


class BatchInput(Step):
    workspaceId: str
    now: AwareDatetime
    force: bool = False
    ids: list[str] = Field(max_length=100)


#: Lists one page: (ids due for work, records listed, cursor of the next page or None).
PageLister = Callable[[PageState], tuple[list[str], int, dict[str, Any] | None]]


def _folded(state: PageState) -> dict[str, Any]:
    """The last Map's results added to the totals, ready for the next page."""
    totals = Counter(state.totals)
    for result in state.results:
        totals.update(result)
    return {"totals": dict(totals), "results": [], "batches": []}


def next_page(state: PageState, list_page: PageLister, batch_size: int) -> PageState:
    update = _folded(state)
    if state.started and state.cursor is None:
        return state.model_copy(update={**update, "done": True})
    due, listed, cursor = list_page(state)
    return state.model_copy(
        update={
            **update,
            "started": True,
            "cursor": cursor,
            "pages": state.pages + 1,
            "executionPages": state.executionPages + 1,
            "listed": state.listed + listed,
            "batches": [due[i : i + batch_size] for i in range(0, len(due), batch_size)],
        }
    )


def _record_progress(step: PageStep, state: PageState) -> None:
    """The totals so far as the run's output while it executes (a canceled run keeps them)."""
    if state.runId is not None:
        attempt = ChainedExecution.parse(step.execution).attempt
        progress = {**state.totals, "pages": state.pages, "listed": state.listed}
        ledger.record_progress(state.runId, attempt, progress)


def page_step(step: PageStep, list_next_page: Callable[[PageState], PageState]) -> PageState:
    """The page step of a family (`list_next_page` folds the results and lists a page),
    or, once this execution has listed its share of pages, the start of the next one."""
    state = step.state
    if state.cursor is None or state.executionPages < step.pagesPerExecution:
        listed = list_next_page(state)
        _record_progress(step, listed)
        return listed
    carried = state.model_copy(update={**_folded(state), "executionPages": 0})
    _record_progress(step, carried)
    successor = ChainedExecution.parse(step.execution).successor()
    try:
        state_machines.start(step.stateMachine, successor.name, carried.model_dump(mode="json"))
    except ExecutionExists:
        pass  # a retry of this step: the successor was started by the first try
    if state.runId is not None:
        # The run's slot lasts as long as its chain does, however many days that is.
        concurrency.extend(state.workspaceId, state.runId, concurrency.DETACHED_LEASE_SECONDS)
    logger.info("bulk run continues in a new execution", extra={"execution": successor.name})
    return carried.model_copy(update={"continued": True})


def start_fanout(
    arn_variable: str, context: RunContext, workspace_id: str, now: datetime, force: bool = False
) -> Detached:
    """Start a bulk state machine for this attempt of the run; it records the outcome
    itself (its last step calls `finish_bulk_run`), so no Lambda waits for it. A retry
    first stops what may still run of the previous attempt's chain, and starts over from
    the first page with zero totals."""
    state_machine = config.require(arn_variable)
    if context.attempt > 1:
        _stop_chain(state_machine, ChainedExecution(context.run_id, context.attempt - 1))
    first = ChainedExecution(context.run_id, context.attempt)
    state = PageState(runId=context.run_id, workspaceId=workspace_id, now=now, force=force)
    try:
        state_machines.start(
            state_machine, first.name, state.model_dump(mode="json", exclude_defaults=True)
        )
    except ExecutionExists:
        pass  # a redelivery of this attempt: the execution is already running
    return Detached(execution=first.chain, state_machine=state_machine)


def _stop_chain(state_machine: str, execution: ChainedExecution) -> None:
    for name in state_machines.stop_chain(
        state_machine, execution.name, "superseded by the next attempt"
    ):
        logger.warning("stopped an earlier attempt", extra={"execution": name})


class FinishInput(Step):
    """What the state machine's finish step sends: its execution's name and the branch's
    result or error."""

    runId: str
    execution: str
    stateMachine: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def finish_bulk_run(
    run_id: str,
    execution: str,
    *,
    state_machine: str | None = None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record the outcome of a run's chain, reported by the execution that ended it: the
    totals (`result`), or `error`. A failure reported for an execution whose successor
    was started changes nothing: the chain goes on in the successor."""
    ended = ChainedExecution.parse(execution)
    if ended.run_id != run_id:
        logger.error("execution of another run; nothing recorded", extra={"execution": execution})
        return
    if error is not None:
        successor = ended.successor().name
        if state_machine and state_machines.status(state_machine, successor) is not None:
            logger.info("chain went on in its next execution", extra={"execution": successor})
            return
        finish_detached_run(run_id, ended.chain, error=error)
        return
    result = result or {}
    output = {**result.get("totals", {}), "pages": result["pages"], "listed": result["listed"]}
    finish_detached_run(run_id, ended.chain, output=output)
