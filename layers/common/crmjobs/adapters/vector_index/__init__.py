"""The vector index of knowledge-item chunks: one interface, two backends, hybrid search.

- ``interface``: the records, the :class:`VectorIndex` protocol and the checks every
  backend applies; ``factory``: :func:`get_vector_index`, the backend configuration asks for.
- ``opensearch``: :class:`OpenSearchVectorIndex`, an OpenSearch managed domain or
  Serverless vector collection through opensearch-py.
- ``local``: :class:`LocalVectorIndex`, one SQLite file for the embedded local runtime.

Both run the same hybrid search (`crmjobs.domain.search`): a k-NN leg and a keyword leg,
each restricted to the workspace, fused by reciprocal rank. Every hit is checked again to
belong to the workspace before it is returned.
"""

from crmjobs.adapters.vector_index.factory import get_vector_index
from crmjobs.adapters.vector_index.interface import (
    ChunkRecord,
    SearchHit,
    VectorIndex,
    VectorIndexError,
)

__all__ = ["ChunkRecord", "SearchHit", "VectorIndex", "VectorIndexError", "get_vector_index"]
