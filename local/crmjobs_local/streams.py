"""A DynamoDB Streams event source with Lambda's semantics, for handlers run in-process.

Reads each shard of a table's stream from where the source started (LATEST), invokes the
handler with Lambda's stream event shape, and with ReportBatchItemFailures retries from the
first failed record, at most `maximum_retry_attempts` times (then the batch is dropped and
logged, as Lambda does when no failure destination can take it).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from crmjobs_local.context import Handler, LambdaContext

logger = logging.getLogger(__name__)


class StreamEventSource:
    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        table_name: str,
        handler: Handler,
        *,
        function_name: str,
        batch_size: int = 100,
        timeout_seconds: float = 300,
        maximum_retry_attempts: int = 3,
        poll_interval_seconds: float = 0.5,
    ) -> None:
        self._streams = streams
        self._handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.timeout_seconds = timeout_seconds
        self.maximum_retry_attempts = maximum_retry_attempts
        self.poll_interval_seconds = poll_interval_seconds
        description = dynamodb.describe_table(TableName=table_name)["Table"]
        self.stream_arn = description.get("LatestStreamArn")
        if not self.stream_arn:
            raise ValueError(f"table {table_name} has no stream")
        self._region = self.stream_arn.split(":")[3]
        self._iterators: dict[str, str] = {}
        self._pending: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_shards("LATEST")

    def _open_shards(self, position: str) -> None:
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in shards["Shards"]:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=position,
                )["ShardIterator"]

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        data = dict(record["dynamodb"])
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            data["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self._region,
            "dynamodb": data,
            "eventSourceARN": self.stream_arn,
        }

    def poll_once(self) -> int:
        """Read and handle one batch per shard; how many batches were handled."""
        self._open_shards("TRIM_HORIZON")
        handled = 0
        for shard_id, iterator in list(self._iterators.items()):
            records, attempts = self._pending.pop(shard_id, ([], 0))
            if not records:
                response = self._streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
                self._iterators[shard_id] = response.get("NextShardIterator") or iterator
                records = [self._lambda_record(r) for r in response.get("Records", [])]
            if not records:
                continue
            handled += 1
            failed_from = self._invoke(records)
            if failed_from is None:
                continue
            if attempts >= self.maximum_retry_attempts:
                logger.error(
                    "stream records dropped after %s retries: %s",
                    attempts,
                    [r["dynamodb"].get("SequenceNumber") for r in records[failed_from:]],
                )
                continue
            self._pending[shard_id] = (records[failed_from:], attempts + 1)
        return handled

    def _invoke(self, records: list[dict[str, Any]]) -> int | None:
        """Index of the first record to retry, or None when all succeeded."""
        context = LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=f"arn:aws:lambda:{self._region}:000000000000:function:{self.function_name}",
            memory_limit_in_mb=128,
            timeout_seconds=self.timeout_seconds,
        )
        try:
            result = self._handler({"Records": records}, context)
        except Exception:
            logger.exception("stream handler %s failed", self.function_name)
            return 0
        failures = (result or {}).get("batchItemFailures") or []
        sequence_numbers = [r["dynamodb"].get("SequenceNumber") for r in records]
        failed = [
            sequence_numbers.index(f["itemIdentifier"])
            for f in failures
            if f.get("itemIdentifier") in sequence_numbers
        ]
        return min(failed) if failed else None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"stream-{self.function_name}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("stream poll of %s failed", self.function_name)
            self._stop.wait(self.poll_interval_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
