"""The task runtime shared by every SQS-fed function.

Per record: find or record the run, validate the payload, take a workspace concurrency
slot, mark EXECUTING with the attempt number, run the task's service function, and mark
COMPLETED with its output or FAILED with its error. Bad input and missing entities fail at
once and are acknowledged; other errors are retried with backoff (the message's visibility)
until the task's attempts are spent, and then the run is FAILED and the message moved to
the dead-letter queue.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from pydantic import BaseModel

from crmjobs import concurrency, config, ledger
from crmjobs.adapters.aws import client as aws_client
from crmjobs.client import message_body
from crmjobs.errors import PermanentError
from crmjobs.ledger import FINISHED, RunConflict, RunStatus
from crmjobs.models import Run
from crmjobs.observability import emit_metric, logger, tracer
from crmjobs.schemas import Payload, parse_payload
from crmjobs.tasks import SYSTEM_WORKSPACE, TaskSpec, get_task

#: Message attribute a producer may set to make a plain message idempotent.
IDEMPOTENCY_ATTRIBUTE = "idempotencyKey"
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


Service = Callable[[Payload, RunContext], Any]


class RetryLater(Exception):
    """The record goes back to the queue without spending an attempt."""


@dataclass(frozen=True)
class Detached:
    """A service's answer when its work goes on in a state machine execution, which
    reports the outcome with `finish_detached_run`."""

    execution: str


def execution_name(run_id: str, attempt: int) -> str:
    """The state machine execution of a run's attempt (unique per attempt)."""
    return f"{run_id}-{attempt}"


def _is_current_execution(run: Run, execution: str) -> bool:
    """The run's current attempt went on in this execution (it may finish the run before
    the attempt's own detach write lands)."""
    if run.execution is not None:
        return run.execution == execution
    return execution == execution_name(run.id, int(run.attempts))


class _DetachedAttempt(Exception):
    """Carries a Detached answer out of the idempotent call without saving it."""

    def __init__(self, answer: Detached) -> None:
        super().__init__(answer.execution)
        self.answer = answer


def backoff_seconds(attempt: int) -> int:
    """1 s, 2 s, 4 s ... capped at 10 s, with up to 25% jitter (SQS takes whole seconds)."""
    base = min(2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
    return min(MAX_BACKOFF_SECONDS, math.ceil(base * random.uniform(1.0, 1.25)))


@dataclass(frozen=True)
class _Message:
    run_id: str | None
    payload: Any
    idempotency_key: str | None

    @property
    def is_envelope(self) -> bool:
        return self.run_id is not None


def _attribute(record: SQSRecord, name: str) -> str | None:
    """A message attribute's string value (Lambda's event shape: stringValue)."""
    attribute = (record.raw_event.get("messageAttributes") or {}).get(name)
    return attribute.get("stringValue") if attribute else None


def _read_message(record: SQSRecord) -> _Message:
    """The client's envelope {"runId", "payload"} or a plain payload from any producer."""
    key = _attribute(record, IDEMPOTENCY_ATTRIBUTE)
    try:
        body = json.loads(record.body)
    except ValueError:
        body = record.body
    if isinstance(body, dict) and isinstance(body.get("runId"), str) and "payload" in body:
        return _Message(body["runId"], body["payload"], key)
    return _Message(None, body, key)


def _run_for(task: TaskSpec, message: _Message, record: SQSRecord) -> Run:
    """The message's run: the envelope's, or one recorded now for a plain message (its id
    stable across redeliveries; with an idempotency key, one run per key within its TTL,
    shared with the client's keys)."""
    if message.is_envelope:
        run = ledger.get(message.run_id)
        if run is not None:
            return run
    payload = message.payload if isinstance(message.payload, dict) else {"body": message.payload}
    workspace = payload.get("workspaceId")
    workspace = workspace if isinstance(workspace, str) and workspace else SYSTEM_WORKSPACE
    run_id = message.run_id or ledger.run_id_for_message(task.name, record.message_id)
    if message.idempotency_key and not message.is_envelope:
        existing = ledger.get(run_id)
        if existing is not None:
            return existing
        run = ledger.new_run(
            run_id=run_id,
            task=task.name,
            workspace_id=workspace,
            payload=payload,
            idempotency_key=message.idempotency_key,
            source="sqs",
        )
        return ledger.create_once(run, message.idempotency_key)[0]
    return ledger.ensure_plain_message_run(
        run_id=run_id, task=task.name, workspace_id=workspace, payload=payload, source="sqs"
    )


@cache
def _persistence_layer() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=config.require("IDEMPOTENCY_TABLE"), boto3_client=aws_client("dynamodb")
    )


def _execute(service: Service, payload: Payload, context: RunContext, job_key: str) -> Any:
    """Run the service once per job key: if an attempt finished the work but not the ledger
    write, the next delivery gets the saved output instead of doing the work again."""
    idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=24 * 3600)
    if context.lambda_context is not None:
        idempotency.register_lambda_context(context.lambda_context)

    @idempotent_function(
        data_keyword_argument="job", persistence_store=_persistence_layer(), config=idempotency
    )
    def run_once(job: dict[str, str]) -> Any:
        output = service(payload, context)
        if isinstance(output, Detached):
            raise _DetachedAttempt(output)  # no output to keep: a retry must start anew
        return output.model_dump(mode="json") if isinstance(output, BaseModel) else output

    try:
        return run_once(job={"key": job_key})
    except _DetachedAttempt as detached:
        return detached.answer


def _sqs():
    return aws_client("sqs")


def _requeue(task: TaskSpec, record: SQSRecord, run: Run) -> None:
    """Wait for a slot: send the run again with a delay and acknowledge this copy, so
    waiting spends no attempt and no receive count."""
    waits = int(_attribute(record, "slotWaits") or 0) + 1
    _sqs().send_message(
        QueueUrl=config.queue_url(task.name),
        MessageBody=message_body(run),
        DelaySeconds=min(MAX_SLOT_WAIT_SECONDS, 2 * waits) + random.randint(0, 3),
        MessageGroupId=run.workspace_id,
        MessageAttributes={"slotWaits": {"DataType": "Number", "StringValue": str(waits)}},
    )
    emit_metric("RunsWaitingForSlot", task.name)


def _dead_letter(task: TaskSpec, body: str, run: Run, error: str) -> None:
    _sqs().send_message(
        QueueUrl=config.dead_letter_queue_url(task.name),
        MessageBody=body,
        MessageAttributes={
            "runId": {"DataType": "String", "StringValue": run.id},
            "error": {"DataType": "String", "StringValue": error[:1000]},
        },
    )


def _fail_for_good(task: TaskSpec, run: Run, body: str, error: str, kind: str) -> None:
    """The last attempt failed: the message goes to the dead-letter queue (first, so a
    failed send leaves the run to be retried), then the run is FAILED."""
    _dead_letter(task, body, run, error)
    ledger.fail(run, f"{error} (after {int(run.attempts)} attempts)", kind)
    emit_metric("RunsFailed", task.name)


def _look_again_later(task: TaskSpec, record: SQSRecord, run: Run) -> None:
    """A delivery of a run another delivery is executing: hidden until that attempt is
    over or counts as lost, so rechecks spend few receives."""
    started = datetime.fromisoformat((run.started_at or ledger.now_iso()).replace("Z", "+00:00"))
    lost_at = started + ledger.LOST_ATTEMPT_AFTER
    wait = int((lost_at - datetime.now(UTC)).total_seconds()) + 1
    _retry(task, record, max(IN_FLIGHT_RECHECK_SECONDS, min(wait, MAX_VISIBILITY_SECONDS)))
    raise RetryLater(f"run {run.id} is being executed by another delivery")


def _retry(task: TaskSpec, record: SQSRecord, seconds: int) -> None:
    _sqs().change_message_visibility(
        QueueUrl=config.queue_url(task.name),
        ReceiptHandle=record.receipt_handle,
        VisibilityTimeout=seconds,
    )


def process_record(
    task: TaskSpec, service: Service, record: SQSRecord, lambda_context: Any = None
) -> None:
    """One record; returns to acknowledge it, raises to leave it for a later attempt."""
    message = _read_message(record)
    run = _run_for(task, message, record)
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
        _look_again_later(task, record, run)
    try:
        # An envelope names a recorded run: its recorded payload is what runs.
        payload = parse_payload(task.name, run.payload if message.is_envelope else message.payload)
        limit = concurrency.limit_for(run.workspace_id)
    except PermanentError as exc:
        ledger.fail(run, str(exc), type(exc).__name__)
        emit_metric("RunsFailed", task.name)
        return
    if ledger.attempt_lost(run) and int(run.attempts) >= task.attempts:
        error = f"attempt {int(run.attempts)} was lost (timed out or crashed)"
        _fail_for_good(task, run, record.body, error, "AttemptLost")
        concurrency.release(run.workspace_id, run.id)
        return
    if not concurrency.acquire(run.workspace_id, run.id, limit):
        _requeue(task, record, run)
        return
    try:
        run = ledger.start_attempt(run)
    except RunConflict:
        current = ledger.get(run.id)
        if current is None or current.status != RunStatus.EXECUTING:
            concurrency.release(run.workspace_id, run.id)  # canceled or finished meanwhile
            return
        _look_again_later(task, record, current)  # the slot is the executing delivery's
    detached = False
    try:
        detached = _attempt(task, service, record, run, payload, lambda_context)
    finally:
        if not detached:
            concurrency.release(run.workspace_id, run.id)


def _attempt(
    task: TaskSpec,
    service: Service,
    record: SQSRecord,
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
        output = _execute(service, payload, context, f"{task.name}:{run.id}")
    except IdempotencyAlreadyInProgressError:
        ledger.retry_later(run, "another delivery is executing this job", "InProgress")
        _retry(task, record, IN_FLIGHT_RECHECK_SECONDS)
        raise
    except PermanentError as exc:
        logger.warning("run failed permanently", extra={"error": str(exc)})
        ledger.fail(run, str(exc), type(exc).__name__)
        emit_metric("RunsFailed", task.name)
        return False
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if attempt >= task.attempts:
            logger.exception("run failed after its last attempt", extra={"attempt": attempt})
            _fail_for_good(task, run, record.body, error, type(exc).__name__)
            return False
        delay = backoff_seconds(attempt)
        logger.warning("attempt failed; retrying", extra={"attempt": attempt, "delay": delay})
        ledger.retry_later(run, error, type(exc).__name__)
        _retry(task, record, delay)
        emit_metric("RunsRetried", task.name)
        raise
    if isinstance(output, Detached):
        if ledger.detach(run, output.execution):
            concurrency.extend(run.workspace_id, run.id, concurrency.DETACHED_LEASE_SECONDS)
        return True  # the slot is the execution's: its last step gives it back
    ledger.complete(run, output)
    emit_metric("RunsCompleted", task.name)
    elapsed_ms = (time.monotonic() - started) * 1000
    emit_metric("RunDuration", task.name, elapsed_ms, MetricUnit.Milliseconds)
    return False


def finish_detached_run(
    run_id: str, execution: str, *, output: Any = None, error: str | None = None
) -> None:
    """Record the end of an attempt that went on in a state machine: COMPLETED, a retry
    (the run's message again after its backoff) or, on the last attempt, FAILED and
    dead-lettered. Gives the run's concurrency slot back. Only the execution of the run's
    current attempt may finish it; a late report of an earlier one changes nothing."""
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
        elif int(run.attempts) >= task.attempts:
            _fail_for_good(task, run, message_body(run), error, "StateMachineFailed")
        else:
            # The message first: if it cannot be sent, the run is still EXECUTING and the
            # state machine's retry of this step tries again.
            _sqs().send_message(
                QueueUrl=config.queue_url(task.name),
                MessageBody=message_body(run),
                DelaySeconds=backoff_seconds(int(run.attempts)),
                MessageGroupId=run.workspace_id,
            )
            ledger.retry_later(run, error, "StateMachineFailed")
            emit_metric("RunsRetried", task.name)
    finally:
        concurrency.release(run.workspace_id, run.id)


def sqs_task_handler(task_name: str, service: Service) -> Callable[[dict, Any], dict]:
    """The Lambda handler of an SQS-fed task: partial batch failures, one run per record."""
    task = get_task(task_name)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict, context: Any) -> dict:
        def record_handler(record: SQSRecord) -> None:
            process_record(task, service, record, context)

        return process_partial_response(
            event=event,
            record_handler=record_handler,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )

    return handler
