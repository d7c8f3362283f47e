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

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crmjobs import config, ledger
from crmjobs.adapters.aws import client as aws_client
from crmjobs.errors import InvalidInput, NotFound
from crmjobs.ledger import RunStatus, RunView
from crmjobs.models import Run
from crmjobs.schemas import parse_payload, payload_json
from crmjobs.tasks import get_task

MAX_SQS_DELAY = timedelta(minutes=15)
_SEND_BATCH = 10


@dataclass(frozen=True)
class TriggerRequest:
    task: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    delay: float | timedelta | None = None
    tags: Sequence[str] = field(default_factory=tuple)


def message_body(run: Run) -> str:
    """The envelope the runtime reads: the run id and its payload."""
    return json.dumps({"runId": run.id, "payload": run.payload}, separators=(",", ":"))


def _delay(value: float | timedelta | None) -> timedelta:
    delay = value if isinstance(value, timedelta) else timedelta(seconds=value or 0)
    if delay < timedelta(0):
        raise InvalidInput("delay must not be negative")
    return delay


def _prepare(
    request: TriggerRequest, source: str, replay_of: str | None = None
) -> tuple[Run, bool]:
    """Validate and record one run: (run, created). An idempotent repeat is not created."""
    task = get_task(request.task)
    payload = parse_payload(task.name, request.payload)
    delay = _delay(request.delay)
    run = ledger.new_run(
        run_id=ledger.new_run_id(),
        task=task.name,
        workspace_id=payload.run_workspace,
        payload=payload_json(payload),
        status=RunStatus.DELAYED if delay else RunStatus.QUEUED,
        tags=tuple(request.tags),
        idempotency_key=request.idempotency_key,
        source=source,
        replay_of=replay_of,
        run_at=(datetime.now(UTC) + delay).isoformat(timespec="seconds") if delay else None,
    )
    if request.idempotency_key:
        return ledger.create_once(run, request.idempotency_key)
    return ledger.create(run), True


def _schedule(run: Run, delay: timedelta) -> None:
    """A one-time schedule delivering the run's message to its queue after `delay`."""
    at = (datetime.now(UTC) + delay).strftime("%Y-%m-%dT%H:%M:%S")
    name = f"run-{run.id}"
    aws_client("scheduler").create_schedule(
        Name=name,
        GroupName=config.require("SCHEDULE_GROUP_NAME"),
        ScheduleExpression=f"at({at})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": config.queue_arn(config.queue_url(run.task)),
            "RoleArn": config.require("SCHEDULER_ROLE_ARN"),
            "Input": message_body(run),
        },
    )
    run.update(actions=[Run.schedule_name.set(name)])


def _entry(run: Run, delay: timedelta) -> dict[str, Any]:
    return {
        "Id": run.id,
        "MessageBody": message_body(run),
        "DelaySeconds": int(delay.total_seconds()),
        # Fair queues: one busy workspace cannot starve the others.
        "MessageGroupId": run.workspace_id,
    }


def _enqueue(runs: list[tuple[Run, timedelta]]) -> None:
    """Send the runs' messages in batches of 10 per queue; a run that could not be sent
    is marked FAILED (never left QUEUED with no message)."""
    sqs = aws_client("sqs")
    by_queue: dict[str, list[tuple[Run, timedelta]]] = {}
    for run, delay in runs:
        if delay > MAX_SQS_DELAY:
            _schedule(run, delay)
        else:
            by_queue.setdefault(config.queue_url(run.task), []).append((run, delay))
    for url, items in by_queue.items():
        for start in range(0, len(items), _SEND_BATCH):
            chunk = items[start : start + _SEND_BATCH]
            response = sqs.send_message_batch(
                QueueUrl=url, Entries=[_entry(run, delay) for run, delay in chunk]
            )
            failed = {f["Id"]: f.get("Message", f.get("Code")) for f in response.get("Failed", [])}
            for run, _ in chunk:
                if run.id in failed:
                    ledger.fail(run, f"could not enqueue: {failed[run.id]}", "EnqueueError")
            if failed:
                raise RuntimeError(f"could not enqueue {len(failed)} run(s): {failed}")


def batch_trigger(requests: Iterable[TriggerRequest], *, source: str = "client") -> list[RunView]:
    prepared = [(request, *_prepare(request, source)) for request in requests]
    _enqueue([(run, _delay(request.delay)) for request, run, created in prepared if created])
    return [RunView.of(run, deduplicated=not created) for _, run, created in prepared]


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
    request = TriggerRequest(task, payload, idempotency_key, delay, tuple(tags))
    return batch_trigger([request], source=source)[0]


def _require(run_id: str, workspace_id: str | None) -> Run:
    run = ledger.get(run_id, workspace_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
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
    if task:
        get_task(task)
    if status and status not in RunStatus.__members__:
        raise InvalidInput(f"unknown status {status!r}; one of {', '.join(RunStatus)}")
    runs = ledger.list_runs(workspace_id, task=task, status=status, tag=tag, limit=limit)
    return [RunView.of(run) for run in runs]


def cancel(run_id: str, workspace_id: str | None = None) -> RunView:
    """A QUEUED or DELAYED run never executes: its message is skipped, its schedule deleted."""
    run = _require(run_id, workspace_id)
    try:
        ledger.cancel(run)
    except ledger.RunConflict:
        raise InvalidInput(
            f"run {run_id} is {run.status}; only QUEUED or DELAYED runs can be canceled"
        ) from None
    if run.schedule_name:
        scheduler = aws_client("scheduler")
        try:
            scheduler.delete_schedule(
                Name=run.schedule_name, GroupName=config.require("SCHEDULE_GROUP_NAME")
            )
        except scheduler.exceptions.ResourceNotFoundException:
            pass  # already fired: the runtime skips the canceled run
    return RunView.of(run)


def replay(run_id: str, workspace_id: str | None = None) -> RunView:
    """A new run of the same task with the same payload."""
    original = _require(run_id, workspace_id)
    request = TriggerRequest(original.task, original.payload, tags=tuple(original.tags or ()))
    run, _ = _prepare(request, "replay", replay_of=original.id)
    _enqueue([(run, timedelta(0))])
    return RunView.of(run)


def wait(run_id: str, *, timeout: float = 60, poll: float = 0.2) -> RunView:
    """Poll until the run is finished (COMPLETED, FAILED or CANCELED) or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        view = retrieve(run_id)
        if view.status in ledger.FINISHED or time.monotonic() >= deadline:
            return view
        time.sleep(poll)
