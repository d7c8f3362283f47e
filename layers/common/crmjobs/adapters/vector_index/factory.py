"""The process's vector index, chosen by configuration."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from crmjobs import config
from crmjobs.adapters.vector_index.interface import VectorIndex

if TYPE_CHECKING:
    from crmjobs.adapters.vector_index.local import LocalVectorIndex
    from crmjobs.adapters.vector_index.opensearch import OpenSearchVectorIndex

DEFAULT_INDEX_NAME = "crmjobs-chunks"
"""The index template.yaml sets as OPENSEARCH_INDEX (its IAM grants name it too)."""


def get_vector_index(dimension: int) -> VectorIndex:
    """The process's vector index, chosen by ``VECTOR_BACKEND`` (``opensearch`` or ``local``).

    Built on first use and cached per process and configuration; it does no I/O against
    OpenSearch until called (callers run ``ensure_index`` once, it is idempotent). Only
    the chosen backend's module is imported.
    """
    backend = config.env("VECTOR_BACKEND", "")
    if backend == "opensearch":
        return _opensearch_index(
            config.require("OPENSEARCH_ENDPOINT"),
            config.region(),
            config.env("OPENSEARCH_SERVICE", "es"),
            config.env("OPENSEARCH_INDEX", DEFAULT_INDEX_NAME),
            dimension,
        )
    if backend == "local":
        return _local_index(
            str(Path(config.require("LOCAL_DATA_DIR")) / "vectors.sqlite3"), dimension
        )
    raise config.ConfigurationError(
        f"VECTOR_BACKEND must be 'opensearch' or 'local', got {backend!r}"
    )


@functools.cache
def _opensearch_index(
    endpoint: str, region: str, service: str, index_name: str, dimension: int
) -> OpenSearchVectorIndex:
    from crmjobs.adapters.vector_index.opensearch import OpenSearchVectorIndex, opensearch_client

    return OpenSearchVectorIndex(
        opensearch_client(endpoint, region, service),
        index_name,
        dimension,
        serverless=service == "aoss",
    )


@functools.cache
def _local_index(path: str, dimension: int) -> LocalVectorIndex:
    from crmjobs.adapters.vector_index.local import LocalVectorIndex

    return LocalVectorIndex(path, dimension)
