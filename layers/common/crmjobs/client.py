"""Trigger tasks and manage their runs from code: the job runner's client.

    from crmjobs import client
    run = client.trigger("score-lead", {"workspaceId": "w1", "prospectId": "p1"},
                         idempotency_key="p1-2026-11-29", tags=["import"])
    client.retrieve(run.id).status

A run is recorded in the ledger before its message is sent, so a run never executes
unrecorded. Delays up to 15 minutes use SQS DelaySeconds; longer ones a one-time
EventBridge Scheduler at() schedule that delivers the same message to the task's queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crmjobs import concurrency, ledger, limits
from crmjobs.adapters import queues, schedules, state_machines
from crmjobs.envelope import run_message
from crmjobs.errors import Conflict, InvalidInput, NotFound
from crmjobs.ledger import CANCELABLE, RunStatus, RunView
from crmjobs.models import Run
from crmjobs.schemas import Payload, parse_payload, payload_json
from crmjobs.tasks import SYSTEM_WORKSPACE, get_task

MAX_SQS_DELAY = timedelta(minutes=15)


@dataclass(frozen=True)
class TriggerRequest:
    task: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    delay: float | timedelta | None = None
    tags: Sequence[str] = field(default_factory=tuple)


def _validate(request: TriggerRequest) -> tuple[Payload, timedelta]:
    """The request's payload and delay, every option checked against crmjobs.limits."""
    get_task(request.task)
    limits.check_tags(request.tags)
    limits.check_idempotency_key(request.idempotency_key)
    delay = limits.delay_of(request.delay)
    payload = parse_payload(request.task, request.payload)
    limits.check_payload_size(payload_json(payload))
    return payload, delay


def _record(
    request: TriggerRequest,
    payload: Payload,
    delay: timedelta,
    source: str,
    replay_of: str | None = None,
    parent_run_id: str | None = None,
) -> tuple[Run, bool]:
    """Record one run: (run, created). An idempotent repeat returns the first run; a
    replay may take its key over from the run it replays."""
    run = ledger.new_run(
        run_id=ledger.new_run_id(),
        task=request.task,
        workspace_id=payload.run_workspace,
        payload=payload_json(payload),
        status=RunStatus.DELAYED if delay else RunStatus.QUEUED,
        tags=tuple(request.tags),
        idempotency_key=request.idempotency_key,
        source=source,
        replay_of=replay_of,
        run_at=ledger.iso(datetime.now(UTC) + delay) if delay else None,
        parent_run_id=parent_run_id,
    )
    if request.idempotency_key:
        return ledger.create_once(run, request.idempotency_key, taking_over_from=replay_of)
    return ledger.create(run), True


def _schedule(run: Run, delay: timedelta) -> None:
    """A one-time schedule delivering the run's message to its queue after `delay`."""
    name = f"run-{run.id}"
    schedules.create_one_time(
        name, datetime.now(UTC) + delay, run.task, run_message(run.id, run.payload)
    )
    ledger.record_schedule(run, name)


def _enqueue(runs: list[tuple[Run, timedelta]]) -> None:
    """Send the runs' messages (10 a request) or schedule them. A run whose message could
    not be sent is marked FAILED and gives its idempotency key back, so no run stays
    QUEUED without a message and triggering again creates it anew."""
    sent: set[str] = set()
    try:
        for run, delay in runs:
            if delay > MAX_SQS_DELAY:
                _schedule(run, delay)
                sent.add(run.id)
        immediate = [(run, delay) for run, delay in runs if run.id not in sent]
        for start in range(0, len(immediate), queues.MAX_BATCH):
            chunk = immediate[start : start + queues.MAX_BATCH]
            failed = queues.send_batch(
                chunk[0][0].task,
                [
                    queues.OutgoingMessage(
                        id=run.id,
                        body=run_message(run.id, run.payload),
                        delay_seconds=int(delay.total_seconds()),
                        group=run.workspace_id,
                    )
                    for run, delay in chunk
                ],
            )
            sent.update(run.id for run, _ in chunk if run.id not in failed)
            if failed:
                raise RuntimeError(f"could not enqueue {len(failed)} run(s): {failed}")
    except Exception as exc:
        for run, _ in runs:
            if run.id not in sent:
                ledger.record_failed(run, f"could not enqueue: {exc}", "EnqueueError")
                ledger.release_idempotency_key(run)
        raise


def batch_trigger(
    requests: Iterable[TriggerRequest],
    *,
    source: str = "client",
    parent_run_id: str | None = None,
) -> list[RunView]:
    """Trigger many runs: every request is validated before any run is recorded, then
    runs are recorded and sent 10 at a time, one task's queue per send. With
    `parent_run_id` (see ledger.expect_child_reports), each new run reports to that run
    when it finishes."""
    validated = [(request, *_validate(request)) for request in requests]
    views: list[RunView] = []
    by_task: dict[str, list] = {}
    for item in validated:
        by_task.setdefault(item[0].task, []).append(item)
    for items in by_task.values():
        for start in range(0, len(items), queues.MAX_BATCH):
            recorded: list[tuple[TriggerRequest, timedelta, Run, bool]] = []
            try:
                for request, payload, delay in items[start : start + queues.MAX_BATCH]:
                    recorded.append(
                        (
                            request,
                            delay,
                            *_record(
                                request, payload, delay, source, parent_run_id=parent_run_id
                            ),
                        )
                    )
            finally:
                # Whatever was recorded is sent (or failed and its key given back), even
                # when recording a later run of the chunk raised.
                _enqueue([(run, delay) for _, delay, run, created in recorded if created])
            views.extend(
                RunView.of(run, deduplicated=not created) for _, _, run, created in recorded
            )
    return views


def trigger(
    task: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    delay: float | timedelta | None = None,
    tags: Sequence[str] = (),
    source: str = "client",
) -> RunView:
    """Record a run and queue it; the same idempotency key within 24 h returns the first run."""
    request = TriggerRequest(task, payload, idempotency_key, delay, tags)
    return batch_trigger([request], source=source)[0]


def _require(run_id: str, workspace_id: str | None) -> Run:
    run = ledger.get(run_id, workspace_id) if limits.is_run_id(run_id) else None
    if run is None:
        raise NotFound(f"run {run_id[:200]} not found")
    return run


def retrieve(run_id: str, workspace_id: str | None = None) -> RunView:
    return RunView.of(_require(run_id, workspace_id))


def list_runs(
    workspace_id: str,
    *,
    task: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    limit: int = 50,
) -> list[RunView]:
    if workspace_id != SYSTEM_WORKSPACE and not limits.is_entity_id(workspace_id):
        raise InvalidInput(f"not a workspace id: {workspace_id[:200]!r}")
    if task:
        get_task(task)
    if status and status not in RunStatus.__members__:
        raise InvalidInput(f"unknown status {status!r}; one of {', '.join(RunStatus)}")
    runs = ledger.list_runs(workspace_id, task=task, status=status, tag=tag, limit=limit)
    return [RunView.of(run) for run in runs]


def cancel(run_id: str, workspace_id: str | None = None) -> RunView:
    """Cancel a run; canceling gives its idempotency key back.

    A QUEUED or DELAYED run never executes: its message is skipped, its schedule deleted.
    An EXECUTING bulk run's execution is stopped and the run is CANCELED at once with its
    totals so far. Any other EXECUTING run gets a cancel request (`cancelRequested`): its
    service stops at its next check between units of work, and the runtime never starts
    or retries another attempt of it; it ends CANCELED (or COMPLETED, if it finished
    first).
    """
    run = _require(run_id, workspace_id)
    if run.status == RunStatus.EXECUTING:
        return RunView.of(_cancel_executing(run))
    try:
        ledger.cancel(run)
    except Conflict:
        raise InvalidInput(
            f"run {run_id} is {run.status}; only QUEUED or DELAYED runs can be canceled "
            "(and EXECUTING ones asked to stop)"
        ) from None
    if run.schedule_name:
        schedules.delete(run.schedule_name)  # False if it fired: the runtime skips the run
    return RunView.of(run)


def _cancel_executing(run: Run) -> Run:
    try:
        ledger.request_cancel(run)
    except Conflict:
        current = ledger.get(run.id)
        if current is not None and current.status in CANCELABLE:  # between two attempts
            ledger.cancel(current)
            return current
        status = current.status if current is not None else "gone"
        raise InvalidInput(f"run {run.id} finished meanwhile ({status})") from None
    if not (run.execution and run.state_machine):
        return run
    state_machines.stop_chain(run.state_machine, run.execution, "canceled by request")
    stopped = ledger.get(run.id)
    try:
        ledger.record_canceled(stopped, "canceled while executing", output=stopped.output)
    except Conflict:
        return stopped  # its last step finished it first
    concurrency.release(stopped.workspace_id, stopped.id)
    ledger.release_idempotency_key(stopped)
    return stopped


def replay(
    run_id: str, workspace_id: str | None = None, *, keep_idempotency_key: bool = False
) -> RunView:
    """A new run of the same task with the same payload. With `keep_idempotency_key` (a
    redrive) it takes the original's key over, so a later trigger with that key finds the
    replay; if the key made another run meanwhile, that run is returned (deduplicated)."""
    original = _require(run_id, workspace_id)
    request = TriggerRequest(
        original.task,
        original.payload,
        idempotency_key=original.idempotency_key if keep_idempotency_key else None,
        tags=tuple(original.tags or ()),
    )
    payload, delay = _validate(request)
    run, created = _record(request, payload, delay, "replay", replay_of=original.id)
    if created:
        _enqueue([(run, delay)])
    return RunView.of(run, deduplicated=not created)


def wait(run_id: str, *, timeout: float = 60, poll: float = 0.2) -> RunView:
    """Poll until the run is finished (COMPLETED, FAILED or CANCELED) or the timeout passes.

    A run not recorded yet (a plain message or a schedule's, before its first delivery)
    is waited for too; NotFound only when it still does not exist at the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            view = retrieve(run_id)
        except NotFound:
            if time.monotonic() >= deadline:
                raise
        else:
            if view.status in ledger.FINISHED or time.monotonic() >= deadline:
                return view
        time.sleep(poll)
