"""An SQS event source mapping with Lambda's semantics, for handlers run in-process.

moto's own SQS->Lambda mapping invokes one record at a time and ignores batchItemFailures,
so the local runtime polls queues itself, the way Lambda's event source mapping does:

- receive up to BatchSize messages, gathering for up to MaximumBatchingWindowInSeconds;
- build the SQS event exactly as Lambda does (Records with messageId, receiptHandle, body,
  attributes, messageAttributes in lower camel case, md5OfBody, eventSource, eventSourceARN,
  awsRegion) and invoke the handler;
- on success delete the records; with ReportBatchItemFailures delete all but those listed in
  batchItemFailures (an unreadable response fails the whole batch); on an error or a timeout
  delete nothing. Records left undeleted come back when their visibility timeout ends (or
  whatever visibility the handler set itself), and SQS's redrive policy moves them to the
  dead-letter queue after maxReceiveCount receives;
- at most MaximumConcurrency invocations run at once for the source.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from crmjobs_local.context import LambdaContext

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

MAX_RECEIVE_PER_CALL = 10  # SQS ReceiveMessage returns at most 10 messages
DEFAULT_MAXIMUM_CONCURRENCY = 5
_SQS_LONG_POLL_LIMIT_S = 20


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one received batch."""

    event: dict[str, Any]
    result: Any = None
    error: BaseException | None = None
    failure_reason: str | None = None  # why the whole batch failed, when it did
    deleted: list[str] = field(default_factory=list)  # message ids
    retried: list[str] = field(default_factory=list)  # message ids left for a later receive
    duration_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.failure_reason is None


class InvalidBatchResponseError(ValueError):
    """The handler's partial batch response cannot be read; Lambda fails the whole batch."""


def failed_message_ids(response: Any, message_ids: list[str]) -> set[str]:
    """The message ids a partial batch response reports as failed.

    Lambda treats None, {}, and a null or empty batchItemFailures as complete success, and
    an empty, null or unknown itemIdentifier (or a response of another shape) as a complete
    failure.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise InvalidBatchResponseError(
            f"response is a {type(response).__name__}, not a batch response object"
        )
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise InvalidBatchResponseError("batchItemFailures is not a list")
    known = set(message_ids)
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or not isinstance(identifier, str):
            raise InvalidBatchResponseError(f"batch item failure without itemIdentifier: {failure}")
        if identifier not in known:
            raise InvalidBatchResponseError(f"itemIdentifier {identifier} is not in the batch")
        failed.add(identifier)
    return failed


def _lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes in the shape Lambda puts in the event."""
    converted = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": [
                base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])
            ],
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = entry
    return converted


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda passes for a batch of messages received from `queue_arn`."""
    region = queue_arn.split(":")[3]
    records = []
    for message in messages:
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes", {})),
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


class SqsEventSource:
    """Polls one queue and invokes one handler with Lambda's SQS event source semantics.

    `poll_once()` receives and handles one batch in the calling thread (for tests and
    step-by-step demos; not bounded by maximum_concurrency, so do not mix it with a started
    source); `start()` polls in a thread and runs up to `maximum_concurrency` invocations at
    once until `stop()`. A handler that runs past `function_timeout_s` cannot be stopped in
    process: it finishes, and its batch then counts as timed out (nothing deleted).
    """

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        batching_window_s: float = 0,
        report_batch_item_failures: bool = True,
        maximum_concurrency: int | None = None,
        function_timeout_s: float = 30,
        function_name: str | None = None,
        context_factory: Callable[[], Any] | None = None,
        on_invoke: Callable[[BatchOutcome], None] | None = None,
        receive_wait_s: int = 1,
    ) -> None:
        fifo = queue_arn.endswith(".fifo")
        if not 1 <= batch_size <= (10 if fifo else 10_000):
            raise ValueError(f"batch_size {batch_size} is outside 1-{10 if fifo else 10_000}")
        if not 0 <= batching_window_s <= 300:
            raise ValueError("batching_window_s must be 0-300 seconds")
        if fifo and batching_window_s:
            raise ValueError("a batching window is not supported for FIFO queues")
        if batch_size > 10 and batching_window_s < 1:
            raise ValueError("a batch_size above 10 needs a batching window of at least 1 s")
        maximum_concurrency = maximum_concurrency or DEFAULT_MAXIMUM_CONCURRENCY
        if not 2 <= maximum_concurrency <= 1000:
            raise ValueError("maximum_concurrency must be 2-1000 (as Lambda's ScalingConfig)")
        if not 0 <= receive_wait_s <= _SQS_LONG_POLL_LIMIT_S:
            raise ValueError("receive_wait_s must be 0-20 seconds")
        self._sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._handler = handler
        self.batch_size = batch_size
        self.batching_window_s = batching_window_s
        self.report_batch_item_failures = report_batch_item_failures
        self.maximum_concurrency = maximum_concurrency
        self.function_timeout_s = function_timeout_s
        self.function_name = function_name or f"local-{queue_arn.rsplit(':', 1)[-1]}"
        self._context_factory = context_factory or self._default_context
        self._on_invoke = on_invoke
        self._receive_wait_s = receive_wait_s
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(maximum_concurrency)
        self._poller: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None

    def _default_context(self) -> LambdaContext:
        _, partition, _, region, account, _ = self.queue_arn.split(":", 5)
        return LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=(
                f"arn:{partition}:lambda:{region}:{account}:function:{self.function_name}"
            ),
            memory_limit_in_mb=128,
            timeout_seconds=self.function_timeout_s,
        )

    # ---- receiving

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, MAX_RECEIVE_PER_CALL),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def receive_batch(self) -> list[dict[str, Any]]:
        """Long-poll for messages; with a batching window, gather until full or the window ends."""
        messages = self._receive(self.batch_size, self._receive_wait_s)
        if not messages or not self.batching_window_s:
            return messages
        deadline = time.monotonic() + self.batching_window_s
        while len(messages) < self.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait_s = min(_SQS_LONG_POLL_LIMIT_S, int(remaining))
            more = self._receive(self.batch_size - len(messages), wait_s)
            messages.extend(more)
            if not more and wait_s == 0:
                time.sleep(min(remaining, 0.05))
        return messages

    # ---- invoking and settling

    def poll_once(self) -> BatchOutcome | None:
        """Receive one batch and handle it in this thread; None when the queue was empty."""
        messages = self.receive_batch()
        return self.process(messages) if messages else None

    def process(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        """Invoke the handler with these received messages and delete what succeeded."""
        event = sqs_event(messages, self.queue_arn)
        message_ids = [message["MessageId"] for message in messages]
        started = time.monotonic()
        result: Any = None
        error: BaseException | None = None
        try:
            # Lambda returns the response as JSON: one that cannot be serialised is an error.
            result = json.loads(json.dumps(self._handler(event, self._context_factory())))
        except Exception as raised:  # the function failed: Lambda retries the whole batch
            error = raised
        duration_s = time.monotonic() - started

        failure_reason: str | None = None
        failed: set[str] = set()
        if error is not None:
            failure_reason = f"{type(error).__name__}: {error}"
        elif duration_s > self.function_timeout_s:
            failure_reason = f"Task timed out after {self.function_timeout_s:.2f} seconds"
        elif self.report_batch_item_failures:
            try:
                failed = failed_message_ids(result, message_ids)
            except InvalidBatchResponseError as invalid:
                failure_reason = f"invalid partial batch response: {invalid}"
        if failure_reason is not None:
            failed = set(message_ids)

        to_delete = [message for message in messages if message["MessageId"] not in failed]
        deleted = self._delete(to_delete)
        outcome = BatchOutcome(
            event=event,
            result=result,
            error=error,
            failure_reason=failure_reason,
            deleted=deleted,
            retried=[message_id for message_id in message_ids if message_id not in deleted],
            duration_s=duration_s,
        )
        if failure_reason:
            logger.warning(
                "%s: batch of %d failed (%s)", self.function_name, len(messages), failure_reason
            )
        if self._on_invoke is not None:
            self._on_invoke(outcome)
        return outcome

    def _delete(self, messages: list[dict[str, Any]]) -> list[str]:
        deleted: list[str] = []
        for start in range(0, len(messages), MAX_RECEIVE_PER_CALL):
            chunk = messages[start : start + MAX_RECEIVE_PER_CALL]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(chunk)
                ],
            )
            for entry in response.get("Successful", []):
                deleted.append(chunk[int(entry["Id"])]["MessageId"])
            for entry in response.get("Failed", []):
                logger.warning(
                    "%s: could not delete message %s: %s",
                    self.function_name,
                    chunk[int(entry["Id"])]["MessageId"],
                    entry.get("Message", entry.get("Code")),
                )
        return deleted

    # ---- running in threads

    def start(self) -> None:
        if self._poller is not None:
            raise RuntimeError(f"{self.function_name}: event source already started")
        self._stop.clear()
        self._workers = ThreadPoolExecutor(
            max_workers=self.maximum_concurrency, thread_name_prefix=self.function_name
        )
        self._poller = threading.Thread(
            target=self._poll_loop, name=f"{self.function_name}-poller", daemon=True
        )
        self._poller.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop polling and wait for running invocations to finish."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout_s)
            self._poller = None
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None

    def _poll_loop(self) -> None:
        assert self._workers is not None
        while not self._stop.is_set():
            # A slot is taken before receiving, so no message waits in flight for a free one.
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                messages = self.receive_batch()
            except Exception:
                self._slots.release()
                logger.exception("%s: receiving from %s failed", self.function_name, self.queue_url)
                self._stop.wait(1)
                continue
            if not messages:
                self._slots.release()
                continue
            self._workers.submit(self._process_in_slot, messages)

    def _process_in_slot(self, messages: list[dict[str, Any]]) -> None:
        try:
            self.process(messages)
        except Exception:
            logger.exception("%s: handling a batch failed", self.function_name)
        finally:
            self._slots.release()
