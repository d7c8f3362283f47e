"""The task runtime shared by every SQS-fed function.

Per delivery (a received message, read from Lambda's event by `crmjobs.sqs_handler`):
find or record the run, validate the payload, take a workspace concurrency slot, mark
EXECUTING with the attempt number, run the task's service function, and mark COMPLETED
with its output or FAILED with its error. Bad input, missing entities and a function's
missing or bad settings (a deployment error) fail the run at once and are acknowledged;
a run canceled while it executes ends CANCELED; other errors are retried with backoff
(the message stays hidden) until the task's attempts are spent, and then the message is
moved to the dead-letter queue and the run is FAILED.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from crmjobs import concurrency, config, envelope, ledger, limits
from crmjobs.adapters import queues
from crmjobs.envelope import Delivery, MessageBody, read_body, run_message
from crmjobs.errors import InvalidInput, PermanentError, RunCanceled
from crmjobs.ledger import FINISHED, RunConflict, RunStatus
from crmjobs.models import Run
from crmjobs.observability import emit_metric, logger
from crmjobs.schemas import Payload, parse_payload
from crmjobs.stores import workspaces
from crmjobs.tasks import SYSTEM_WORKSPACE, TaskSpec, get_task

MAX_BACKOFF_SECONDS = 10
MAX_SLOT_WAIT_SECONDS = 60
#: A second delivery of a message whose run is executing looks again after this long.
IN_FLIGHT_RECHECK_SECONDS = 30
MAX_VISIBILITY_SECONDS = 12 * 3600


@dataclass(frozen=True)
class RunContext:
    """What a service function knows of the run it serves."""

    run_id: str
    task: str
    workspace_id: str
    attempt: int
    max_attempts: int
    lambda_context: Any = None

    def remaining_seconds(self) -> float:
        if self.lambda_context is None:
            return float("inf")
        return self.lambda_context.get_remaining_time_in_millis() / 1000

    def cancel_requested(self) -> bool:
        """Someone asked to cancel the run while it executes (one read of its record). A
        long service checks between units of work and raises RunCanceled."""
        return ledger.cancel_requested(self.run_id)


Service = Callable[[Payload, RunContext], Any]


class RetryLater(Exception):
    """The record goes back to the queue without spending an attempt."""


@dataclass(frozen=True)
class Detached:
    """A service's answer when its work goes on in a state machine execution, which
    reports the outcome with `finish_detached_run`. With its state machine named, canceling
    the run stops the execution (a chain of them: crmjobs.domain.execution_chains)."""

    execution: str
    state_machine: str | None = None


def execution_name(run_id: str, attempt: int) -> str:
    """The state machine execution of a run's attempt (unique per attempt)."""
    return f"{run_id}-{attempt}"


def _is_current_execution(run: Run, execution: str) -> bool:
    """The run's current attempt went on in this execution (it may finish the run before
    the attempt's own detach write lands)."""
    if run.execution is not None:
        return run.execution == execution
    return execution == execution_name(run.id, int(run.attempts))


def backoff_seconds(attempt: int) -> int:
    """1 s, 2 s, 4 s ... capped at 10 s, with up to 25% jitter (SQS takes whole seconds)."""
    base = min(2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
    return min(MAX_BACKOFF_SECONDS, math.ceil(base * random.uniform(1.0, 1.25)))


def run_id_of(task: str, message_id: str, body: str) -> str:
    """The run a received message belongs to: its envelope's, or the one its own id names
    (a plain message's, or a rejected message's). A plain message with an idempotency key
    that another message already used is that other run's duplicate and records none."""
    read = read_body(body)
    if read.is_envelope and limits.is_run_id(read.run_id):
        return read.run_id
    return ledger.run_id_for_message(task, message_id)


def _recordable_payload(body: MessageBody) -> dict[str, Any]:
    return body.payload if isinstance(body.payload, dict) else {"body": body.payload}


def _record_workspace(payload: dict[str, Any]) -> str:
    """The workspace a message's run is recorded in: its payload's, when that is a workspace
    id at all (else the system's, where the payload's validation fails it)."""
    workspace = payload.get("workspaceId")
    return workspace if limits.is_entity_id(workspace) else SYSTEM_WORKSPACE


def _run_for(task: TaskSpec, body: MessageBody, delivery: Delivery) -> Run | None:
    """The message's run: the envelope's, or one recorded now for a plain message (its id
    stable across redeliveries; with an idempotency key, one run per key within its TTL,
    shared with the client's keys). None for a plain message whose key already made
    another message's run (or a client's): a duplicate, whatever its body says."""
    if body.is_envelope:
        run = ledger.get(body.run_id)
        if run is not None:
            return run
    payload = _recordable_payload(body)
    workspace = _record_workspace(payload)
    run_id = body.run_id or ledger.run_id_for_message(task.name, delivery.message_id)
    if delivery.idempotency_key and not body.is_envelope:
        existing = ledger.get(run_id)
        if existing is not None:
            return existing
        run = ledger.new_run(
            run_id=run_id,
            task=task.name,
            workspace_id=workspace,
            payload=payload,
            idempotency_key=delivery.idempotency_key,
            source="sqs",
            message_id=delivery.message_id,
        )
        run = ledger.create_once(run, delivery.idempotency_key)[0]
        if run.id != run_id:
            logger.info(
                "duplicate message: its idempotency key belongs to another run; acknowledged",
                extra={
                    "message_id": delivery.message_id,
                    "first_message_id": run.message_id,
                    "first_run_id": run.id,
                    "idempotency_key": delivery.idempotency_key,
                },
            )
            return None
        return run
    return ledger.ensure_plain_message_run(
        run_id=run_id,
        task=task.name,
        workspace_id=workspace,
        payload=payload,
        source="sqs",
        message_id=None if body.is_envelope else delivery.message_id,
    )


def _unacceptable(delivery: Delivery, body: MessageBody) -> str | None:
    """Why the runtime cannot take the message as it is (a limit of crmjobs.limits, a
    malformed envelope), or None."""
    size = len(delivery.body.encode())
    if size > (limits.MAX_MESSAGE_BYTES if body.is_envelope else limits.MAX_PAYLOAD_BYTES):
        return (
            f"the message body is {size:,} bytes; a payload may be at most "
            f"{limits.MAX_PAYLOAD_BYTES:,} bytes"
        )
    if body.is_envelope and not limits.is_run_id(body.run_id):
        return (
            f"the envelope's runId ({len(body.run_id):,} characters) is not a run id: 1 to "
            f"{limits.MAX_RUN_ID_LENGTH} letters, digits, '_' or '-'"
        )
    try:
        limits.check_idempotency_key(delivery.idempotency_key)
    except InvalidInput as exc:
        return f"the {envelope.IDEMPOTENCY_KEY_ATTRIBUTE} attribute: {exc}"
    return None


def _carried_attributes(delivery: Delivery | None, run: Run | None) -> dict[str, str]:
    """The message attributes a dead letter keeps (a redrive sends them again): the
    delivery's, and the run's idempotency key; not the runtime's own bookkeeping."""
    carried = {
        name: value
        for name, value in (delivery.attributes if delivery else {}).items()
        if name
        not in (
            envelope.SLOT_WAITS_ATTRIBUTE,
            envelope.DEAD_LETTER_RUN_ATTRIBUTE,
            envelope.DEAD_LETTER_ERROR_ATTRIBUTE,
        )
    }
    if run is not None and run.idempotency_key:
        carried[envelope.IDEMPOTENCY_KEY_ATTRIBUTE] = run.idempotency_key
    return carried


def _reject(task: TaskSpec, delivery: Delivery, body: MessageBody, reason: str) -> None:
    """A message the runtime cannot take: a FAILED run records why (with its payload when
    that fits a run record), the message goes to the dead-letter queue with the reason, on
    its first receive; never retried."""
    payload = _recordable_payload(body)
    fits = limits.json_bytes(payload) <= limits.MAX_PAYLOAD_BYTES
    run = ledger.record_rejected(
        ledger.new_run(
            run_id=ledger.run_id_for_message(task.name, delivery.message_id),
            task=task.name,
            workspace_id=_record_workspace(payload) if fits else SYSTEM_WORKSPACE,
            payload=payload if fits else {},
            source="sqs",
            message_id=delivery.message_id,
        ),
        f"message rejected: {reason}",
    )
    logger.warning(
        "message rejected",
        extra={"message_id": delivery.message_id, "run_id": run.id, "reason": reason},
    )
    attributes: dict[str, str | int] = {
        **_carried_attributes(delivery, None),
        envelope.DEAD_LETTER_ERROR_ATTRIBUTE: f"rejected: {reason}"[:1000],
    }
    attributes.pop(envelope.IDEMPOTENCY_KEY_ATTRIBUTE, None)  # it may be the reason
    if fits:  # a redrive replays the recorded run; otherwise it sends the body again
        attributes[envelope.DEAD_LETTER_RUN_ATTRIBUTE] = run.id
    queues.dead_letter(task.name, delivery.body, attributes)
    emit_metric("MessagesRejected", task.name)


def _execute(service: Service, payload: Payload, context: RunContext) -> Any:
    """The service's answer as the ledger keeps it (JSON), or its Detached answer.

    Exactly one delivery gets here per attempt (starting an attempt is a conditional write
    on the run's status and attempt count), and the output is kept by the same conditional
    write that completes the run, so no separate idempotency record is needed.
    """
    output = service(payload, context)
    if isinstance(output, Detached):
        return output
    output = output.model_dump(mode="json") if isinstance(output, BaseModel) else output
    limits.check_output_size(output)
    return output


def _send_back_to_wait(task: TaskSpec, delivery: Delivery, run: Run) -> None:
    """Wait for a slot: send the run again with a delay and acknowledge this copy, so
    waiting spends no attempt and no receive count."""
    waits = delivery.slot_waits + 1
    queues.send(
        task.name,
        run_message(run.id, run.payload),
        delay_seconds=min(MAX_SLOT_WAIT_SECONDS, 2 * waits) + random.randint(0, 3),
        group=run.workspace_id,
        attributes={envelope.SLOT_WAITS_ATTRIBUTE: waits},
    )
    emit_metric("RunsWaitingForSlot", task.name)


def _dead_letter_run(
    task: TaskSpec, run: Run, body: str, error: str, kind: str, delivery: Delivery | None = None
) -> None:
    """The last attempt failed: the message goes to the dead-letter queue (first, so a
    failed send leaves the run to be retried) with its attributes, then the run is FAILED."""
    queues.dead_letter(
        task.name,
        body,
        {
            **_carried_attributes(delivery, run),
            envelope.DEAD_LETTER_RUN_ATTRIBUTE: run.id,
            envelope.DEAD_LETTER_ERROR_ATTRIBUTE: error[:1000],
        },
    )
    ledger.record_failed(run, f"{error} (after {int(run.attempts)} attempts)", kind)
    emit_metric("RunsFailed", task.name)


def _record_canceled(task: TaskSpec, run: Run, message: str, output: Any = None) -> None:
    """CANCELED on request, never retried; canceling gives the idempotency key back."""
    ledger.record_canceled(run, message, output=output)
    ledger.release_idempotency_key(run)
    emit_metric("RunsCanceled", task.name)


def _look_again_later(task: TaskSpec, delivery: Delivery, run: Run) -> None:
    """A delivery of a run another delivery is executing: hidden until that attempt is
    over or counts as lost, so rechecks spend few receives."""
    started = datetime.fromisoformat((run.started_at or ledger.now_iso()).replace("Z", "+00:00"))
    lost_at = started + ledger.LOST_ATTEMPT_AFTER
    wait = int((lost_at - datetime.now(UTC)).total_seconds()) + 1
    hidden = max(IN_FLIGHT_RECHECK_SECONDS, min(wait, MAX_VISIBILITY_SECONDS))
    queues.hide(task.name, delivery.receipt_handle, hidden)
    raise RetryLater(f"run {run.id} is being executed by another delivery")


def process_delivery(
    task: TaskSpec, service: Service, delivery: Delivery, lambda_context: Any = None
) -> None:
    """One delivery; returns to acknowledge it, raises to leave it for a later attempt."""
    body = read_body(delivery.body)
    problem = _unacceptable(delivery, body)
    if problem is not None:
        _reject(task, delivery, body, problem)
        return
    run = _run_for(task, body, delivery)
    if run is None:
        return  # a duplicate of another message's run
    logger.append_keys(run_id=run.id, workspace_id=run.workspace_id)
    if run.task != task.name:
        logger.error("message names a run of another task; dropped", extra={"task": run.task})
        return
    if run.status in FINISHED:
        logger.info("run already finished; message skipped", extra={"status": run.status})
        return
    if run.status == RunStatus.EXECUTING and run.execution is not None:
        logger.info("run goes on in its state machine; duplicate message skipped")
        return
    if run.status == RunStatus.EXECUTING and not ledger.attempt_lost(run):
        _look_again_later(task, delivery, run)
    if run.cancel_requested:  # canceled while an earlier attempt executed: no other one
        _record_canceled(task, run, "canceled before its next attempt", run.output)
        concurrency.release(run.workspace_id, run.id)
        return
    try:
        # A bad deployment fails the run with the variable's name (checked once per
        # container); the runtime's own tables, if missing, already failed to find the run.
        config.check_environment(config.RUNTIME_VARIABLES)
        # An envelope names a recorded run: its recorded payload is what runs.
        payload = parse_payload(task.name, run.payload if body.is_envelope else body.payload)
        limit = workspaces.concurrency_limit(run.workspace_id)
    except PermanentError as exc:
        ledger.record_failed(run, str(exc), type(exc).__name__)
        emit_metric("RunsFailed", task.name)
        return
    if ledger.attempt_lost(run) and int(run.attempts) >= task.attempts:
        error = f"attempt {int(run.attempts)} was lost (timed out or crashed)"
        _dead_letter_run(task, run, delivery.body, error, "AttemptLost", delivery)
        concurrency.release(run.workspace_id, run.id)
        return
    if not concurrency.acquire(run.workspace_id, run.id, limit):
        _send_back_to_wait(task, delivery, run)
        return
    try:
        run = ledger.start_attempt(run)
    except RunConflict:
        current = ledger.get(run.id)
        if current is None or current.status != RunStatus.EXECUTING:
            concurrency.release(run.workspace_id, run.id)  # canceled or finished meanwhile
            return
        _look_again_later(task, delivery, current)  # the slot is the executing delivery's
    detached = False
    try:
        detached = _attempt(task, service, delivery, run, payload, lambda_context)
    finally:
        if not detached:
            concurrency.release(run.workspace_id, run.id)


def _attempt(
    task: TaskSpec,
    service: Service,
    delivery: Delivery,
    run: Run,
    payload: Payload,
    lambda_context: Any,
) -> bool:
    """Run one attempt and record its outcome; True when it went on in a state machine."""
    attempt = int(run.attempts)
    context = RunContext(
        run.id, task.name, run.workspace_id, attempt, task.attempts, lambda_context
    )
    started = time.monotonic()
    try:
        output = _execute(service, payload, context)
    except RunCanceled as exc:
        logger.info("run canceled while executing", extra={"reason": str(exc)})
        _record_canceled(task, run, str(exc))
        return False
    except PermanentError as exc:
        logger.warning("run failed permanently", extra={"error": str(exc)})
        ledger.record_failed(run, str(exc), type(exc).__name__)
        emit_metric("RunsFailed", task.name)
        return False
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if ledger.cancel_requested(run.id):
            logger.info("attempt failed after a cancel request", extra={"error": error})
            _record_canceled(task, run, f"canceled while executing (the attempt failed: {error})")
            return False
        if attempt >= task.attempts:
            logger.exception("run failed after its last attempt", extra={"attempt": attempt})
            _dead_letter_run(task, run, delivery.body, error, type(exc).__name__, delivery)
            return False
        delay = backoff_seconds(attempt)
        logger.warning("attempt failed; retrying", extra={"attempt": attempt, "delay": delay})
        ledger.retry_later(run, error, type(exc).__name__)
        queues.hide(task.name, delivery.receipt_handle, delay)
        emit_metric("RunsRetried", task.name)
        raise
    if isinstance(output, Detached):
        if ledger.detach(run, output.execution, output.state_machine):
            concurrency.extend(run.workspace_id, run.id, concurrency.DETACHED_LEASE_SECONDS)
        return True  # the slot is the execution's: its last step gives it back
    ledger.complete(run, output)
    emit_metric("RunsCompleted", task.name)
    elapsed_ms = (time.monotonic() - started) * 1000
    emit_metric("RunDuration", task.name, elapsed_ms, MetricUnit.Milliseconds)
    return False


def finish_detached_run(
    run_id: str, execution: str, *, output: Any = None, error: str | PermanentError | None = None
) -> None:
    """Record the end of an attempt that went on in a state machine: COMPLETED, a retry
    (the run's message again after its backoff) or, on the last attempt, FAILED and
    dead-lettered; a PermanentError (bad input) fails it at once, never retried; an error
    of a run asked to stop makes it CANCELED, which gives its idempotency key back. Gives
    the run's concurrency slot back. Only the execution of the run's current attempt may
    finish it; a late report of an earlier one changes nothing."""
    run = ledger.get(run_id)
    if (
        run is None
        or run.status != RunStatus.EXECUTING
        or not _is_current_execution(run, execution)
    ):
        logger.info("not this run's current execution; nothing to finish", extra={"run": run_id})
        return
    task = get_task(run.task)
    try:
        if error is None:
            ledger.complete(run, output)
            emit_metric("RunsCompleted", task.name)
        elif run.cancel_requested:
            _record_canceled(task, run, f"canceled while executing ({error})", run.output)
        elif isinstance(error, PermanentError):
            ledger.record_failed(run, str(error), type(error).__name__)
            emit_metric("RunsFailed", task.name)
        elif int(run.attempts) >= task.attempts:
            message = run_message(run.id, run.payload)
            _dead_letter_run(task, run, message, error, "StateMachineFailed")
        else:
            # The message first: if it cannot be sent, the run is still EXECUTING and the
            # state machine's retry of this step tries again.
            queues.send(
                task.name,
                run_message(run.id, run.payload),
                delay_seconds=backoff_seconds(int(run.attempts)),
                group=run.workspace_id,
            )
            ledger.retry_later(run, error, "StateMachineFailed")
            emit_metric("RunsRetried", task.name)
    finally:
        concurrency.release(run.workspace_id, run.id)
