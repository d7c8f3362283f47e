"""What an embedder offers, and the error of a bad embeddings setting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from crmjobs import config


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; ``model_id`` is stored as embeddingModel."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class EmbeddingsSettingError(config.ConfigurationError, ValueError):
    """EMBEDDINGS_* settings are missing or invalid: a deployment problem, not a task error."""

