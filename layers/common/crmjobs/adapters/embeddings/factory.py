"""The embedder the configuration asks for, one instance per setting."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from crmjobs import config
from crmjobs.adapters.embeddings.bedrock import (
    DEFAULT_TITAN_DIMENSION,
    TITAN_V2_DIMENSIONS,
    TITAN_V2_MODEL_ID,
    BedrockTitanEmbedder,
)
from crmjobs.adapters.embeddings.interface import Embedder, EmbeddingsSettingError

if TYPE_CHECKING:
    from crmjobs.adapters.embeddings.minilm import LocalMiniLMEmbedder


def get_embedder() -> Embedder:
    """The embedder the environment asks for; the same settings give the same instance.

    EMBEDDINGS_BACKEND is ``bedrock`` or ``local``. For ``bedrock``, EMBEDDINGS_MODEL_ID
    (default Titan V2) and EMBEDDINGS_DIMENSION (256, 512 or 1024; default 512) apply; the
    local model has one fixed id and 384 dimensions.
    """
    backend = (config.env("EMBEDDINGS_BACKEND") or "").strip().lower()
    if backend == "bedrock":
        return _bedrock_embedder(
            config.env("EMBEDDINGS_MODEL_ID", TITAN_V2_MODEL_ID),
            _titan_dimension(config.env("EMBEDDINGS_DIMENSION")),
        )
    if backend == "local":
        return _local_embedder()
    raise EmbeddingsSettingError(
        f"EMBEDDINGS_BACKEND must be 'bedrock' or 'local', got {config.env('EMBEDDINGS_BACKEND')!r}"
    )


def _titan_dimension(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_TITAN_DIMENSION
    try:
        dimension = int(raw)
    except ValueError:
        dimension = None
    if dimension not in TITAN_V2_DIMENSIONS:
        raise EmbeddingsSettingError(
            f"EMBEDDINGS_DIMENSION must be one of {TITAN_V2_DIMENSIONS} for Titan V2, got {raw!r}"
        )
    return dimension


@functools.cache
def _bedrock_embedder(bedrock_model_id: str, dimension: int) -> BedrockTitanEmbedder:
    return BedrockTitanEmbedder(dimension=dimension, bedrock_model_id=bedrock_model_id)


@functools.cache
def _local_embedder() -> LocalMiniLMEmbedder:
    from crmjobs.adapters.embeddings.minilm import LocalMiniLMEmbedder

    return LocalMiniLMEmbedder()
