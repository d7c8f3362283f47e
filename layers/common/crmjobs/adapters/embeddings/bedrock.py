"""Amazon Titan Text Embeddings V2 through Bedrock Runtime ``InvokeModel``."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from crmjobs.adapters import aws
from crmjobs.adapters.backoff import Backoff

logger = logging.getLogger(__name__)

TITAN_V2_MODEL_ID = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
DEFAULT_TITAN_DIMENSION = 512

# Errors after which the same request can succeed if sent again a little later.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "InternalServerException",
    }
)


class BedrockTitanEmbedder:
    """Titan Text Embeddings V2 via ``InvokeModel``, one request per text (no batch API).

    Input limits: Titan V2 takes at most 8,192 tokens and 50,000 characters. A text is cut to
    50,000 characters before it is sent; if Bedrock still answers ValidationException "Too many
    input tokens", the request is sent again with the first half of the text, up to
    ``max_halvings`` times. The vector then represents the beginning of the text only, which
    is logged. Chunks from ``chunk_text`` (<= 700 characters) never come close to the limit.

    Throttling and transient server errors are retried with exponential backoff and full
    jitter (``sleep(jitter() * min(max_delay, base_delay * 2**retry))``), ``max_attempts``
    attempts in all; botocore's own retries are turned off so that this is the only layer.
    """

    MAX_INPUT_CHARACTERS = 50_000

    def __init__(
        self,
        *,
        dimension: int = DEFAULT_TITAN_DIMENSION,
        bedrock_model_id: str = TITAN_V2_MODEL_ID,
        client: Any | None = None,
        max_attempts: int = 6,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        max_halvings: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if dimension not in TITAN_V2_DIMENSIONS:
            raise ValueError(f"Titan V2 dimension must be one of {TITAN_V2_DIMENSIONS}")
        self.bedrock_model_id = bedrock_model_id
        self.dimension = dimension
        self.model_id = f"{bedrock_model_id}@{dimension}"
        self._client = client
        self._client_lock = threading.Lock()
        self._backoff = Backoff(max_attempts, base_delay, max_delay, sleep, jitter)
        self._max_halvings = max_halvings

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = aws.create_client(
                    "bedrock-runtime", Config(retries={"total_max_attempts": 1})
                )
            return self._client

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        sent = text[: self.MAX_INPUT_CHARACTERS]
        halvings = 0
        while True:
            try:
                embedding = self._invoke_with_backoff(sent)
                break
            except ClientError as error:
                if halvings == self._max_halvings or not _is_too_many_tokens(error):
                    raise
                halvings += 1
                sent = sent[: len(sent) // 2]
        if len(sent) < len(text):
            logger.warning(
                "embedded the first %d of %d characters of a text over Titan's input limit",
                len(sent),
                len(text),
            )
        return embedding

    def _invoke_with_backoff(self, text: str) -> list[float]:
        for last in self._backoff.attempts():
            try:
                return self._invoke(text)
            except (ClientError, BotocoreConnectionError, HTTPClientError) as error:
                if last or not _is_retryable(error):
                    raise
                logger.info("Bedrock call failed (%s); retrying", error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _invoke(self, text: str) -> list[float]:
        body = {"inputText": text, "dimensions": self.dimension, "normalize": True}
        response = self.client.invoke_model(
            modelId=self.bedrock_model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        payload = json.loads(response["body"].read())
        embedding = payload.get("embedding")
        if not isinstance(embedding, list) or len(embedding) != self.dimension:
            size = len(embedding) if isinstance(embedding, list) else None
            raise ValueError(
                f"{self.bedrock_model_id} returned an embedding of size {size}, "
                f"expected {self.dimension}"
            )
        return [float(value) for value in embedding]


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in RETRYABLE_ERROR_CODES
    return True  # connection errors and timeouts


def _is_too_many_tokens(error: ClientError) -> bool:
    details = error.response.get("Error", {})
    return (
        details.get("Code") == "ValidationException"
        and "too many input tokens" in details.get("Message", "").lower()
    )
