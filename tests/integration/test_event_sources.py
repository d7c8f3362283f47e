"""The local SQS event source against a moto server: Lambda's batch, retry and DLQ semantics."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid

import pytest

from crmjobs_local.event_sources import SqsEventSource

REGION = "us-east-1"


@pytest.fixture
def sqs(moto_clients):
    (client,) = moto_clients("sqs")
    return client


def make_queue(sqs, *, visibility_s: int = 1, redrive_to: str | None = None, receives: int = 2):
    attributes = {"VisibilityTimeout": str(visibility_s)}
    if redrive_to:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": redrive_to, "maxReceiveCount": str(receives)}
        )
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}", Attributes=attributes)[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def send_bodies(sqs, url, *bodies):
    return {sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]: body for body in bodies}


def visible_bodies(sqs, url) -> list[str]:
    """Bodies visible right now, received and put back at once (visibility 0)."""
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return sorted(message["Body"] for message in messages)


def fail_bodies(*failing):
    def handler(event, context):
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]}
                for record in event["Records"]
                if record["body"] in failing
            ]
        }

    return handler


def test_event_has_lambdas_sqs_record_shape(sqs):
    url, arn = make_queue(sqs)
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"leadId": "p-1"}',
        MessageAttributes={
            "tenant": {"DataType": "String", "StringValue": "ws-1"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    seen = []
    source = SqsEventSource(sqs, url, arn, lambda event, context: seen.append((event, context)))

    outcome = source.poll_once()

    assert outcome is not None and outcome.succeeded
    event, context = seen[0]
    (record,) = event["Records"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == '{"leadId": "p-1"}'
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == REGION
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    for name in ("SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"):
        assert record["attributes"][name]
    assert record["messageAttributes"]["tenant"] == {
        "stringValue": "ws-1",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == b"\x00\x01"
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert outcome.deleted == [record["messageId"]]
    assert visible_bodies(sqs, url) == []


def test_fifo_records_carry_the_message_group(sqs):
    url = sqs.create_queue(
        QueueName=f"f-{uuid.uuid4().hex[:12]}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="first", MessageGroupId="ws-1")
    seen = []
    SqsEventSource(sqs, url, arn, lambda event, context: seen.append(event)).poll_once()
    assert seen[0]["Records"][0]["attributes"]["MessageGroupId"] == "ws-1"


def test_partial_batch_failure_retries_only_the_failed_record_after_the_visibility_timeout(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "a", "b", "c")
    source = SqsEventSource(sqs, url, arn, fail_bodies("b"))

    outcome = source.poll_once()

    assert len(outcome.event["Records"]) == 3
    assert len(outcome.deleted) == 2 and len(outcome.retried) == 1
    assert visible_bodies(sqs, url) == []  # not made visible early
    time.sleep(1.2)
    retry = source.poll_once()
    (record,) = retry.event["Records"]
    assert record["body"] == "b"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"


def test_handler_exception_leaves_the_whole_batch_for_retry(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "a", "b")

    def broken(event, context):
        raise RuntimeError("database unavailable")

    outcome = SqsEventSource(sqs, url, arn, broken).poll_once()

    assert outcome.deleted == []
    assert outcome.failure_reason == "RuntimeError: database unavailable"
    assert visible_bodies(sqs, url) == []
    time.sleep(1.2)
    assert visible_bodies(sqs, url) == ["a", "b"]


def test_invalid_partial_response_fails_the_whole_batch(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "a", "b")

    def unknown_identifier(event, context):
        return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    outcome = SqsEventSource(sqs, url, arn, unknown_identifier).poll_once()

    assert outcome.deleted == []
    assert "not in the batch" in outcome.failure_reason
    time.sleep(1.2)
    assert visible_bodies(sqs, url) == ["a", "b"]


def test_response_that_is_not_json_fails_the_batch(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "a")

    outcome = SqsEventSource(sqs, url, arn, lambda event, context: {"ids": {"a"}}).poll_once()

    assert outcome.deleted == []
    assert outcome.failure_reason.startswith("TypeError")


def test_without_report_batch_item_failures_success_deletes_everything(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "a", "b")
    source = SqsEventSource(sqs, url, arn, fail_bodies("a"), report_batch_item_failures=False)

    outcome = source.poll_once()

    assert len(outcome.deleted) == 2
    time.sleep(1.2)
    assert visible_bodies(sqs, url) == []


def test_timed_out_invocation_deletes_nothing(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "slow")

    def slow(event, context):
        time.sleep(0.3)

    outcome = SqsEventSource(sqs, url, arn, slow, function_timeout_s=0.1).poll_once()

    assert outcome.deleted == []
    assert outcome.failure_reason.startswith("Task timed out after 0.10 seconds")


def test_record_moves_to_the_dead_letter_queue_after_max_receive_count(sqs):
    dlq_url, dlq_arn = make_queue(sqs)
    url, arn = make_queue(sqs, visibility_s=1, redrive_to=dlq_arn, receives=2)
    send_bodies(sqs, url, "poison")
    source = SqsEventSource(sqs, url, arn, fail_bodies("poison"), receive_wait_s=0)

    receive_counts = []
    for _ in range(4):
        outcome = source.poll_once()
        if outcome is None:
            break
        receive_counts.append(outcome.event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        time.sleep(1.1)

    assert receive_counts == ["1", "2"]
    assert visible_bodies(sqs, url) == []
    assert visible_bodies(sqs, dlq_url) == ["poison"]


def test_batch_size_limits_records_per_invocation(sqs):
    url, arn = make_queue(sqs, visibility_s=30)
    send_bodies(sqs, url, *"abcde")
    source = SqsEventSource(
        sqs, url, arn, lambda event, context: None, batch_size=2, receive_wait_s=0
    )

    sizes = []
    while (outcome := source.poll_once()) is not None:
        sizes.append(len(outcome.event["Records"]))

    assert sorted(sizes) == [1, 2, 2]


def test_batching_window_gathers_messages_sent_during_the_window(sqs):
    url, arn = make_queue(sqs, visibility_s=30)
    send_bodies(sqs, url, "early-1", "early-2")
    late_sender = threading.Timer(0.4, send_bodies, (sqs, url, "late-1", "late-2"))
    source = SqsEventSource(
        sqs, url, arn, lambda event, context: None, batch_size=20, batching_window_s=1.5
    )

    late_sender.start()
    try:
        outcome = source.poll_once()
    finally:
        late_sender.join()

    assert sorted(record["body"] for record in outcome.event["Records"]) == [
        "early-1",
        "early-2",
        "late-1",
        "late-2",
    ]


def test_full_batch_is_invoked_before_the_window_ends(sqs):
    url, arn = make_queue(sqs, visibility_s=30)
    send_bodies(sqs, url, *"abcd")
    source = SqsEventSource(
        sqs, url, arn, lambda event, context: None, batch_size=3, batching_window_s=5
    )

    started = time.monotonic()
    outcome = source.poll_once()

    assert len(outcome.event["Records"]) == 3
    assert time.monotonic() - started < 2


def test_maximum_concurrency_bounds_parallel_invocations(sqs):
    url, arn = make_queue(sqs, visibility_s=30)
    send_bodies(sqs, url, *(f"m{index}" for index in range(10)))
    lock = threading.Lock()
    running = 0
    peak = 0
    handled = []

    def slow_handler(event, context):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.15)
        with lock:
            running -= 1
            handled.extend(record["body"] for record in event["Records"])

    source = SqsEventSource(sqs, url, arn, slow_handler, batch_size=1, maximum_concurrency=3)
    source.start()
    try:
        deadline = time.monotonic() + 10
        while len(handled) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        source.stop()

    assert sorted(handled) == sorted(f"m{index}" for index in range(10))
    assert peak == 3


def test_visibility_set_by_the_handler_is_honoured(sqs):
    url, arn = make_queue(sqs, visibility_s=1)
    send_bodies(sqs, url, "back-off")

    def backing_off(event, context):
        record = event["Records"][0]
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=2
        )
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    SqsEventSource(sqs, url, arn, backing_off).poll_once()

    time.sleep(1.3)  # past the queue's 1 s visibility timeout
    assert visible_bodies(sqs, url) == []
    time.sleep(1)
    assert visible_bodies(sqs, url) == ["back-off"]


def test_on_invoke_reports_each_batch(sqs):
    url, arn = make_queue(sqs)
    send_bodies(sqs, url, "a")
    reports = []
    source = SqsEventSource(
        sqs, url, arn, lambda event, context: {"batchItemFailures": []}, on_invoke=reports.append
    )

    source.poll_once()

    (report,) = reports
    assert report.result == {"batchItemFailures": []}
    assert report.error is None and report.duration_s >= 0
    assert report.event["Records"][0]["body"] == "a"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"batch_size": 11}, "batching window"),
        ({"batch_size": 0}, "outside"),
        ({"maximum_concurrency": 1}, "2-1000"),
        ({"batching_window_s": 301}, "0-300"),
    ],
)
def test_invalid_mapping_settings_are_refused(sqs, options, reason):
    url, arn = make_queue(sqs)
    with pytest.raises(ValueError, match=reason):
        SqsEventSource(sqs, url, arn, lambda event, context: None, **options)
