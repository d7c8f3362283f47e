"""The run ledger: every run's record and its status transitions, as conditional writes.

Status flow: QUEUED or DELAYED -> EXECUTING -> COMPLETED | FAILED | CANCELED, back to QUEUED
between attempts; QUEUED or DELAYED -> CANCELED. A transition that does not hold (a
duplicate delivery, a canceled run) fails its condition (RunConflict) instead of
overwriting the record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from crmjobs import config
from crmjobs.errors import Conflict
from crmjobs.models import Run, TriggerKey
from crmjobs.stores.dynamodb import conflict_on_failed_condition
from crmjobs.tasks import TASK_TIMEOUT_SECONDS, get_task

RUN_RETENTION_DAYS = 30
LOST_ATTEMPT_AFTER = timedelta(seconds=TASK_TIMEOUT_SECONDS + 60)
IDEMPOTENCY_TTL = timedelta(hours=24)
_RUN_NAMESPACE = uuid.UUID("0b5c6f0e-8b4a-4c59-9a55-3f6c3c1f2d10")


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    DELAYED = "DELAYED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


FINISHED = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}
CANCELABLE = {RunStatus.QUEUED, RunStatus.DELAYED}


class RunView(BaseModel):
    """What users see of a run (client, HTTP API, CLI)."""

    id: str
    task: str
    workspaceId: str
    status: RunStatus
    payload: dict[str, Any]
    attempts: int
    maxAttempts: int
    output: Any = None
    error: dict[str, Any] | None = None
    tags: list[str] = []
    idempotencyKey: str | None = None
    source: str
    replayOf: str | None = None
    runAt: str | None = None
    createdAt: str
    updatedAt: str
    startedAt: str | None = None
    finishedAt: str | None = None
    #: The state machine execution of a bulk run's current attempt.
    execution: str | None = None
    #: Someone asked the executing run to stop; it ends CANCELED at its next check.
    cancelRequested: bool = False
    #: True when a trigger's idempotency key returned this earlier run instead of a new one.
    deduplicated: bool = False

    @classmethod
    def of(cls, run: Run, *, deduplicated: bool = False) -> RunView:
        output = run.output
        if run.child_totals is not None:  # a parent shows what its runs did so far
            totals = {name: int(value) for name, value in run.child_totals.as_dict().items()}
            output = {**(output if isinstance(output, dict) else {}), **totals}
        return cls(
            id=run.id,
            task=run.task,
            workspaceId=run.workspace_id,
            status=RunStatus(run.status),
            payload=run.payload,
            attempts=int(run.attempts or 0),
            maxAttempts=int(run.max_attempts),
            output=output,
            error=run.error,
            tags=sorted(run.tags or ()),
            idempotencyKey=run.idempotency_key,
            source=run.source,
            replayOf=run.replay_of,
            runAt=run.run_at,
            createdAt=run.created_at,
            updatedAt=run.updated_at,
            startedAt=run.started_at,
            finishedAt=run.finished_at,
            execution=run.execution,
            cancelRequested=bool(run.cancel_requested),
            deduplicated=deduplicated,
        )


class RunConflict(Conflict):
    """The run is not in a state that allows the requested transition."""


def iso(moment: datetime) -> str:
    """The ledger's timestamp text: UTC, milliseconds, "Z" (it sorts in the indexes)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


def run_id_for_message(task: str, message_id: str) -> str:
    """A plain SQS message's run id: stable across redeliveries of that message."""
    return f"run_{uuid.uuid5(_RUN_NAMESPACE, f'{task}:{message_id}').hex}"


def new_run(
    *,
    run_id: str,
    task: str,
    workspace_id: str,
    payload: dict[str, Any],
    status: RunStatus = RunStatus.QUEUED,
    tags: tuple[str, ...] | list[str] = (),
    idempotency_key: str | None = None,
    source: str = "client",
    replay_of: str | None = None,
    run_at: str | None = None,
    message_id: str | None = None,
    parent_run_id: str | None = None,
) -> Run:
    created = now_iso()
    return Run(
        id=run_id,
        task=task,
        workspace_id=workspace_id,
        workspace_task=f"{workspace_id}#{task}",
        workspace_status=f"{workspace_id}#{status}",
        status=str(status),
        payload=payload,
        attempts=0,
        max_attempts=get_task(task).attempts,
        tags=set(tags) or None,
        idempotency_key=idempotency_key,
        source=source,
        replay_of=replay_of,
        message_id=message_id,
        parent_run_id=parent_run_id,
        run_at=run_at,
        created_at=created,
        updated_at=created,
        # Kept for the retention period after it may run, so a long delay cannot outlive it.
        expires_at=(datetime.fromisoformat(run_at) if run_at else datetime.now(UTC))
        + timedelta(days=config.int_setting("RUN_RETENTION_DAYS", RUN_RETENTION_DAYS)),
    )


def create(run: Run) -> Run:
    run.save(condition=Run.id.does_not_exist())
    return run


def create_once(
    run: Run, idempotency_key: str, *, taking_over_from: str | None = None
) -> tuple[Run, bool]:
    """Create the run unless the key already made one within its TTL: (run, created).
    With `taking_over_from`, the key may point at that run: it moves to the new one (a
    redriven run keeps its key)."""
    guard_id = TriggerKey.key_for(run.task, run.workspace_id, idempotency_key)
    ttl = timedelta(
        seconds=config.int_setting("IDEMPOTENCY_TTL_SECONDS", int(IDEMPOTENCY_TTL.total_seconds()))
    )
    guard = TriggerKey(id=guard_id, run_id=run.id, expiration=ttl)
    free = TriggerKey.id.does_not_exist() | (TriggerKey.expiration < datetime.now(UTC))
    if taking_over_from is not None:
        free = free | (TriggerKey.run_id == taking_over_from)
    try:
        with TransactWrite(connection=Connection(region=config.region())) as transaction:
            transaction.save(guard, condition=free)
            transaction.save(run, condition=Run.id.does_not_exist())
        return run, True
    except TransactWriteError as exc:
        reasons = [r.code if r else None for r in (exc.cancellation_reasons or [])]
        if reasons and reasons[0] == "ConditionalCheckFailed":
            existing = TriggerKey.get(guard_id, consistent_read=True)
            return Run.get(existing.run_id, consistent_read=True), False
        raise


def release_idempotency_key(run: Run) -> None:
    """Forget the run's trigger key (only while it still points at this run)."""
    if not run.idempotency_key:
        return
    guard = TriggerKey(id=TriggerKey.key_for(run.task, run.workspace_id, run.idempotency_key))
    try:
        with conflict_on_failed_condition("the key points at another run"):
            guard.delete(condition=TriggerKey.run_id == run.id)
    except Conflict:
        pass  # a later trigger owns the key now


def get(run_id: str, workspace_id: str | None = None) -> Run | None:
    """The run, or None when missing or in another workspace than the one given."""
    try:
        run = Run.get(run_id, consistent_read=True)
    except Run.DoesNotExist:
        return None
    if workspace_id is not None and run.workspace_id != workspace_id:
        return None
    return run


def _transition(run: Run, status: RunStatus, condition, **fields: Any) -> Run:
    actions = [
        Run.status.set(str(status)),
        Run.workspace_status.set(f"{run.workspace_id}#{status}"),
        Run.updated_at.set(now_iso()),
    ]
    for name, value in fields.items():
        attribute = getattr(Run, name)
        actions.append(attribute.remove() if value is None else attribute.set(value))
    try:
        with conflict_on_failed_condition(f"run {run.id} cannot become {status}"):
            run.update(actions=actions, condition=condition)
    except Conflict as exc:
        raise RunConflict(str(exc)) from None
    if status in FINISHED and run.parent_run_id:
        _report_to_parent(run, status)
    return run


#: Output counts a parent does not sum (they describe how a bulk run paged).
_NOT_SUMMED = frozenset({"pages", "listed"})


def expect_child_reports(run_id: str) -> None:
    """The run is a parent: the runs it triggers with `parent_run_id` add their counts to
    its totals when they finish (RunView.output shows them)."""
    Run(id=run_id).update(actions=[Run.child_totals.set(Run.child_totals | {})])


def _report_to_parent(run: Run, status: RunStatus) -> None:
    """Add a finished run's counts (its output's whole numbers) to its parent's totals, once:
    the transition that finished it happens once. A parent that is gone is left alone."""
    output = run.output if isinstance(run.output, dict) else {}
    counts = {
        name: value
        for name, value in output.items()
        if isinstance(value, int) and not isinstance(value, bool) and name not in _NOT_SUMMED
    }
    counts["runsFinished"] = 1
    if status != RunStatus.COMPLETED:
        counts[f"runs{status.capitalize()}"] = 1
    actions = [
        Run.child_totals[name].set((Run.child_totals[name] | 0) + value)
        for name, value in counts.items()
    ]
    try:
        with conflict_on_failed_condition(f"run {run.parent_run_id} takes no reports"):
            Run(id=run.parent_run_id).update(actions=actions, condition=Run.child_totals.exists())
    except Conflict:
        pass


def _lost_before() -> str:
    """An attempt started before this instant has outlived any Lambda: it was lost."""
    return ((datetime.now(UTC) - LOST_ATTEMPT_AFTER).isoformat(timespec="milliseconds")).replace(
        "+00:00", "Z"
    )


def attempt_lost(run: Run) -> bool:
    """EXECUTING for longer than an attempt can run (a timeout or crash killed it), and not
    handed to a state machine (those report back themselves)."""
    return (
        run.status == RunStatus.EXECUTING
        and run.execution is None
        and (run.started_at or "") < _lost_before()
    )


def start_attempt(run: Run) -> Run:
    """QUEUED/DELAYED (or EXECUTING after a lost attempt) -> EXECUTING, attempts + 1.

    Conditional on the status and attempts read, so two deliveries of one message never
    both run, and a run that another delivery is executing is left alone.
    """
    startable = Run.status.is_in(str(RunStatus.QUEUED), str(RunStatus.DELAYED)) | (
        (Run.status == str(RunStatus.EXECUTING))
        & Run.execution.does_not_exist()
        & (Run.started_at < _lost_before())
    )
    condition = startable & (Run.attempts == int(run.attempts or 0))
    return _transition(
        run,
        RunStatus.EXECUTING,
        condition,
        attempts=int(run.attempts or 0) + 1,
        started_at=now_iso(),
    )


def detach(run: Run, execution: str, state_machine: str | None = None) -> bool:
    """The attempt goes on in a state machine execution, which finishes the run. False
    when the execution already finished it (an empty workspace can be that quick). With
    its state machine recorded, canceling the run stops the execution."""
    try:
        with conflict_on_failed_condition(f"run {run.id} is no longer at this attempt"):
            run.update(
                actions=[
                    Run.execution.set(execution),
                    Run.state_machine.set(state_machine)
                    if state_machine
                    else Run.state_machine.remove(),
                    Run.updated_at.set(now_iso()),
                ],
                condition=(Run.status == str(RunStatus.EXECUTING))
                & (Run.attempts == int(run.attempts or 0)),
            )
    except Conflict:
        return False
    return True


def complete(run: Run, output: Any) -> Run:
    return _transition(
        run,
        RunStatus.COMPLETED,
        Run.status == str(RunStatus.EXECUTING),
        output=output,
        error=None,
        finished_at=now_iso(),
    )


def _error(message: str, kind: str, attempt: int) -> dict[str, Any]:
    return {"message": message, "type": kind, "attempt": attempt, "at": now_iso()}


def record_failed(run: Run, message: str, kind: str) -> Run:
    """The run's final status FAILED with its error: bad input, a missing entity, or the
    last attempt spent (the runtime dead-letters its message first)."""
    return _transition(
        run,
        RunStatus.FAILED,
        Run.status.is_in(str(RunStatus.EXECUTING), str(RunStatus.QUEUED), str(RunStatus.DELAYED)),
        error=_error(message, kind, int(run.attempts or 0)),
        finished_at=now_iso(),
    )


def retry_later(run: Run, message: str, kind: str) -> Run:
    """EXECUTING -> QUEUED with the error kept, until the next attempt starts (which starts
    over: the attempt's progress is dropped)."""
    return _transition(
        run,
        RunStatus.QUEUED,
        Run.status == str(RunStatus.EXECUTING),
        error=_error(message, kind, int(run.attempts or 0)),
        execution=None,
        state_machine=None,
        output=None,
    )


def record_progress(run_id: str, attempt: int, output: dict[str, Any]) -> bool:
    """What an attempt that goes on in a state machine has done so far (its totals), kept
    as the run's output while it executes; False when the run is no longer at that attempt
    (finished, canceled or retried meanwhile)."""
    try:
        with conflict_on_failed_condition(f"run {run_id} is no longer at attempt {attempt}"):
            Run(id=run_id).update(
                actions=[Run.output.set(output), Run.updated_at.set(now_iso())],
                condition=(Run.status == str(RunStatus.EXECUTING)) & (Run.attempts == attempt),
            )
    except Conflict:
        return False
    return True


def cancel(run: Run) -> Run:
    """A run that has not started yet never will (and gives its idempotency key back)."""
    _transition(
        run,
        RunStatus.CANCELED,
        Run.status.is_in(*(str(s) for s in CANCELABLE)),
        finished_at=now_iso(),
    )
    release_idempotency_key(run)
    return run


def request_cancel(run: Run) -> None:
    """Ask an executing run to stop: its service sees the flag between units of work
    (RunContext.cancel_requested) and ends the run CANCELED; the runtime never retries it."""
    with conflict_on_failed_condition(f"run {run.id} is not executing"):
        run.update(
            actions=[Run.cancel_requested.set(True), Run.updated_at.set(now_iso())],
            condition=Run.status == str(RunStatus.EXECUTING),
        )
    run.cancel_requested = True


def cancel_requested(run_id: str) -> bool:
    """Whether someone asked the run to stop (one consistent GetItem of that flag)."""
    try:
        run = Run.get(run_id, consistent_read=True, attributes_to_get=["cancelRequested"])
    except Run.DoesNotExist:
        return False
    return bool(run.cancel_requested)


def record_canceled(run: Run, message: str, *, output: Any = None) -> Run:
    """A run stopped on request while it executed (or waited for its next attempt):
    CANCELED with why and what it did so far (`output`), never retried. (Whoever may
    delete trigger keys gives its key back: release_idempotency_key.)"""
    _transition(
        run,
        RunStatus.CANCELED,
        Run.status.is_in(str(RunStatus.EXECUTING), str(RunStatus.QUEUED)),
        error=_error(message, "RunCanceled", int(run.attempts or 0)),
        output=output,
        finished_at=now_iso(),
    )
    return run


def record_schedule(run: Run, schedule_name: str) -> None:
    """The one-time schedule that delivers a long-delayed run (cancel deletes it)."""
    run.update(actions=[Run.schedule_name.set(schedule_name)])


def list_runs(
    workspace_id: str,
    *,
    task: str | None = None,
    status: RunStatus | str | None = None,
    tag: str | None = None,
    limit: int = 50,
) -> list[Run]:
    """Newest first, from the index that fits; a tag narrows with a filter."""
    if task and status:
        query = Run.by_workspace_task.query(
            f"{workspace_id}#{task}",
            filter_condition=Run.status == str(RunStatus(status)),
            scan_index_forward=False,
        )
    elif task:
        query = Run.by_workspace_task.query(f"{workspace_id}#{task}", scan_index_forward=False)
    elif status:
        query = Run.by_workspace_status.query(
            f"{workspace_id}#{RunStatus(status)}", scan_index_forward=False
        )
    else:
        query = Run.by_workspace.query(workspace_id, scan_index_forward=False)
    runs: list[Run] = []
    for run in query:
        if tag and tag not in (run.tags or ()):
            continue
        runs.append(run)
        if len(runs) >= limit:
            break
    return runs


def ensure_plain_message_run(
    *,
    run_id: str,
    task: str,
    workspace_id: str,
    payload: dict[str, Any],
    source: str,
    message_id: str | None = None,
) -> Run:
    """The run of a message published without the client: created on first delivery."""
    existing = get(run_id)
    if existing is not None:
        return existing
    run = new_run(
        run_id=run_id,
        task=task,
        workspace_id=workspace_id,
        payload=payload,
        source=source,
        message_id=message_id,
    )
    try:
        with conflict_on_failed_condition(f"run {run_id} exists"):
            return create(run)
    except Conflict:
        return Run.get(run_id, consistent_read=True)  # recorded by a concurrent delivery


def record_rejected(run: Run, message: str) -> Run:
    """Record a run FAILED from the start: a message the runtime refuses as it is (over a
    limit, a malformed envelope). The run recorded earlier for that message, if any."""
    finished = now_iso()
    run.status = str(RunStatus.FAILED)
    run.workspace_status = f"{run.workspace_id}#{RunStatus.FAILED}"
    run.error = _error(message, "InvalidInput", 0)
    run.finished_at = finished
    try:
        with conflict_on_failed_condition(f"run {run.id} exists"):
            return create(run)
    except Conflict:
        return Run.get(run.id, consistent_read=True)
