"""Retrying a request to a remote service with exponential backoff and full jitter (AWS
Architecture Blog, "Exponential Backoff And Jitter"), for the adapters whose client does not
retry by itself (the model and embedding calls: botocore's retries are off there, so a
throttle is retried here, within the call's time budget)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    max_attempts: int
    base_delay: float
    max_delay: float
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry` (0 for the first retry)."""
        return self.jitter() * min(self.max_delay, self.base_delay * 2**retry)

    def attempts(self) -> Iterator[bool]:
        """One item per attempt: whether it is the last. The caller returns on success and
        raises when it gives up (always on the last attempt); between attempts this sleeps.

            for last in backoff.attempts():
                try:
                    return call()
                except Retryable:
                    if last:
                        raise
        """
        for retry in range(self.max_attempts):
            last = retry == self.max_attempts - 1
            yield last
            if not last:
                self.sleep(self.delay(retry))
