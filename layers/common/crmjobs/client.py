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
from crmjobs.schemas import Payload, parse_payload, payload_json
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


def _validate(request: TriggerRequest) -> tuple[Payload, timedelta]:
    get_task(request.task)
    return parse_payload(request.task, request.payload), _delay(request.delay)


def _record(
    request: TriggerRequest,
    payload: Payload,
    delay: timedelta,
    source: str,
    replay_of: str | None = None,
) -> tuple[Run, bool]:
    """Record one run: (run, created). An idempotent repeat returns the first run."""
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
    """Send the runs' messages (10 a request) or schedule them. A run whose message could
    not be sent is marked FAILED and gives its idempotency key back, so no run stays
    QUEUED without a message and triggering again creates it anew."""
    sqs = aws_client("sqs")
    sent: set[str] = set()
    try:
        for run, delay in runs:
            if delay > MAX_SQS_DELAY:
                _schedule(run, delay)
                sent.add(run.id)
        immediate = [(run, delay) for run, delay in runs if run.id not in sent]
        for start in range(0, len(immediate), _SEND_BATCH):
            chunk = immediate[start : start + _SEND_BATCH]
            response = sqs.send_message_batch(
                QueueUrl=config.queue_url(chunk[0][0].task),
                Entries=[_entry(run, delay) for run, delay in chunk],
            )
            sent.update(entry["Id"] for entry in response.get("Successful", []))
            failed = {f["Id"]: f.get("Message", f.get("Code")) for f in response.get("Failed", [])}
            if failed:
                raise RuntimeError(f"could not enqueue {len(failed)} run(s): {failed}")
    except Exception as exc:
        for run, _ in runs:
            if run.id not in sent:
                ledger.fail(run, f"could not enqueue: {exc}", "EnqueueError")
                ledger.release_idempotency_key(run)
        raise


def batch_trigger(requests: Iterable[TriggerRequest], *, source: str = "client") -> list[RunView]:
    """Trigger many runs: every request is validated before any run is recorded, then
    runs are recorded and sent 10 at a time, one task's queue per send."""
    validated = [(request, *_validate(request)) for request in requests]
    views: list[RunView] = []
    by_task: dict[str, list] = {}
    for item in validated:
        by_task.setdefault(item[0].task, []).append(item)
    for items in by_task.values():
        for start in range(0, len(items), _SEND_BATCH):
            recorded: list[tuple[TriggerRequest, timedelta, Run, bool]] = []
            try:
                for request, payload, delay in items[start : start + _SEND_BATCH]:
                    recorded.append((request, delay, *_record(request, payload, delay, source)))
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
    payload, delay = _validate(request)
    run, _ = _record(request, payload, delay, "replay", replay_of=original.id)
    _enqueue([(run, delay)])
    return RunView.of(run)


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
