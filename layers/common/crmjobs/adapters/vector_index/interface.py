"""What every vector index of knowledge-item chunks offers, and the checks they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChunkRecord:
    workspace_id: str
    item_id: str
    title: str
    text: str
    chunk_index: int
    total_chunks: int
    type: str
    mime_type: str | None
    file_name: str | None
    vector: Sequence[float]


@dataclass(frozen=True)
class SearchHit:
    item_id: str
    title: str
    chunk: str
    chunk_index: int
    score: float


class VectorIndex(Protocol):
    def ensure_index(self) -> None:
        """Create the index and its mapping if missing; safe to call any number of times."""

    def replace_item_chunks(
        self, workspace_id: str, item_id: str, chunks: Sequence[ChunkRecord]
    ) -> None:
        """Make ``chunks`` the item's only chunks (a shorter re-index leaves no stale ones)."""

    def delete_item(self, workspace_id: str, item_id: str) -> None: ...

    def search(
        self, workspace_id: str, query_text: str, query_vector: Sequence[float], k: int = 5
    ) -> list[SearchHit]:
        """Hybrid k-NN + keyword search within one workspace, best first."""

    def count(self, workspace_id: str) -> int: ...


class VectorIndexError(RuntimeError):
    """A write or read the index refused, with the documents it concerns."""


def chunk_id(workspace_id: str, item_id: str, chunk_index: int) -> str:
    return f"{workspace_id}:{item_id}:{chunk_index}"


def check_replacement(
    workspace_id: str, item_id: str, chunks: Sequence[ChunkRecord], dimension: int
) -> None:
    """Reject a replacement whose chunks are not the item's, in order, of the dimension."""
    if ":" in workspace_id or ":" in item_id:
        # Chunk ids join them with ":"; allowing it would let two tenants' ids collide.
        raise ValueError(f"workspace and item ids must not contain ':': {workspace_id}/{item_id}")
    for position, chunk in enumerate(chunks):
        if (chunk.workspace_id, chunk.item_id) != (workspace_id, item_id):
            raise ValueError(
                f"chunk {chunk.chunk_index} belongs to {chunk.workspace_id}/{chunk.item_id}, "
                f"not {workspace_id}/{item_id}"
            )
        if chunk.chunk_index != position:
            raise ValueError(f"chunk at position {position} has chunk_index {chunk.chunk_index}")
        if len(chunk.vector) != dimension:
            raise ValueError(
                f"chunk {chunk.chunk_index} has dimension {len(chunk.vector)}, "
                f"the index expects {dimension}"
            )


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")

