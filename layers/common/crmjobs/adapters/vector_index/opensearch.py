"""The vector index on OpenSearch: a managed domain (SigV4 service ``es``) or a Serverless
vector collection (``aoss``), through opensearch-py (imported when first used)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmjobs.adapters import aws
from crmjobs.adapters.vector_index.interface import (
    ChunkRecord,
    SearchHit,
    VectorIndexError,
    check_k,
    check_replacement,
    chunk_id,
)
from crmjobs.domain.search import (
    STOP_WORDS,
    TITLE_BOOST,
    candidates_per_leg,
    reciprocal_rank_fusion,
    unit_vector,
)

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)

BULK_BATCH_SIZE = 100
"""Documents per ``_bulk`` request: 100 chunks with 1,024-dimension vectors stay near 2 MB,
well under the 10 MiB request limit of the smallest OpenSearch Service instances."""

MAX_CHUNKS_PER_ITEM = 10_000
"""OpenSearch's default index.max_result_window bounds one id lookup on Serverless."""

TEXT_ANALYZER = "crmjobs_english"


def opensearch_client(endpoint: str, region: str, service: str) -> OpenSearch:
    """An opensearch-py client signing with SigV4 from the default credentials.

    ``service`` is ``es`` for a managed domain, ``aoss`` for a Serverless collection. The
    credentials object is botocore's refreshable one: the signer takes a fresh frozen copy
    for every request, so assumed-role credentials roll over in long-lived processes.
    """
    from opensearchpy import OpenSearch, RequestsAWSV4SignerAuth, RequestsHttpConnection

    if service not in ("es", "aoss"):
        raise ValueError(f"OpenSearch service must be 'es' or 'aoss', got {service!r}")
    credentials = aws.credentials()
    if credentials is None:
        raise VectorIndexError("no AWS credentials found to sign OpenSearch requests")
    host = re.sub(r"^https?://", "", endpoint).rstrip("/")
    return OpenSearch(
        hosts=[{"host": host, "port": 443}],
        http_auth=RequestsAWSV4SignerAuth(credentials, region, service),
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=30,
    )


def opensearch_index_body(dimension: int) -> dict[str, Any]:
    """Settings and mapping of the chunk index.

    The vector field uses HNSW on the faiss engine with inner product over unit vectors
    (the adapter normalises every vector, so inner product equals cosine). faiss is the
    engine both managed domains and Serverless vector collections serve, and it applies a
    filter inside the knn clause during the graph search (efficient filtering, 2.9+), so
    a small workspace still gets its k nearest chunks.
    """
    keyword = {"type": "keyword"}
    text = {"type": "text", "analyzer": TEXT_ANALYZER}
    return {
        "settings": {
            "index": {"knn": True},
            # The local backend's keyword leg, in OpenSearch terms: stop words, Porter stems.
            "analysis": {
                "filter": {
                    "crmjobs_stop": {"type": "stop", "stopwords": sorted(STOP_WORDS)},
                    "crmjobs_stemmer": {"type": "stemmer", "language": "porter"},
                },
                "analyzer": {
                    TEXT_ANALYZER: {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "crmjobs_stop", "crmjobs_stemmer"],
                    }
                },
            },
        },
        "mappings": {
            "properties": {
                "workspaceId": keyword,
                "itemId": keyword,
                "type": keyword,
                "mimeType": keyword,
                "fileName": keyword,
                "generation": keyword,
                "title": text,
                "text": text,
                "chunkIndex": {"type": "integer"},
                "totalChunks": {"type": "integer"},
                "vector": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct"},
                },
            }
        },
    }


@dataclass(frozen=True)
class _BulkAction:
    label: str
    """The chunk's deterministic id: names the document in errors even when the server
    assigns the real ``_id`` (Serverless)."""
    header: dict[str, Any]
    source: dict[str, Any] | None = None


_HIT_FIELDS = ["workspaceId", "itemId", "title", "text", "chunkIndex"]


class OpenSearchVectorIndex:
    """Chunks in one OpenSearch index shared by all workspaces, filtered by ``workspaceId``.

    Managed domain: documents get deterministic ids, writes ask for ``refresh=wait_for``
    (an item is searchable once its indexing job reports it ready), and stale chunks go
    with ``delete_by_query``.

    Serverless (``serverless=True``): vector collections assign document ids themselves
    and support neither ``delete_by_query`` nor the ``refresh`` parameter. Every write
    therefore stamps its chunks with a fresh ``generation``; afterwards the item's chunks of
    any other generation are looked up (ids only) and bulk-deleted. Serverless search is
    eventually consistent: a chunk written less than a refresh interval before the next
    re-index of the same item can escape that lookup.
    """

    def __init__(
        self,
        client: OpenSearch,
        index_name: str,
        dimension: int,
        serverless: bool,
        *,
        throttle_retries: int = 4,
        throttle_backoff_seconds: float = 0.5,
    ) -> None:
        self._client = client
        self._index = index_name
        self._dimension = dimension
        self._serverless = serverless
        self._throttle_retries = throttle_retries
        self._throttle_backoff_seconds = throttle_backoff_seconds

    def ensure_index(self) -> None:
        from opensearchpy import RequestError

        if self._call(self._client.indices.exists, index=self._index):
            self._check_existing_dimension()
            return
        try:
            self._call(
                self._client.indices.create,
                index=self._index,
                body=opensearch_index_body(self._dimension),
            )
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise

    def replace_item_chunks(
        self, workspace_id: str, item_id: str, chunks: Sequence[ChunkRecord]
    ) -> None:
        check_replacement(workspace_id, item_id, chunks, self._dimension)
        if self._serverless:
            generation = uuid.uuid4().hex
            self._bulk(
                [
                    _BulkAction(
                        label=chunk_id(workspace_id, item_id, chunk.chunk_index),
                        header={"index": {"_index": self._index}},
                        source=self._document(chunk, generation),
                    )
                    for chunk in chunks
                ]
            )
            self._delete_ids(self._item_ids(workspace_id, item_id, except_generation=generation))
            return
        actions = []
        for chunk in chunks:
            doc_id = chunk_id(workspace_id, item_id, chunk.chunk_index)
            actions.append(
                _BulkAction(
                    label=doc_id,
                    header={"index": {"_index": self._index, "_id": doc_id}},
                    source=self._document(chunk, generation=None),
                )
            )
        self._bulk(actions, refresh="wait_for")
        stale = {"range": {"chunkIndex": {"gte": len(chunks)}}}
        self._delete_by_query(_item_filter(workspace_id, item_id) + [stale])

    def delete_item(self, workspace_id: str, item_id: str) -> None:
        if self._serverless:
            self._delete_ids(self._item_ids(workspace_id, item_id, except_generation=None))
        else:
            self._delete_by_query(_item_filter(workspace_id, item_id))

    def search(
        self, workspace_id: str, query_text: str, query_vector: Sequence[float], k: int = 5
    ) -> list[SearchHit]:
        check_k(k)
        size = candidates_per_leg(k)
        workspace_filter = {"term": {"workspaceId": workspace_id}}
        knn_query = {
            "knn": {
                "vector": {
                    "vector": unit_vector(query_vector, self._dimension),
                    "k": size,
                    "filter": workspace_filter,
                }
            }
        }
        legs = [self._hits({"size": size, "_source": _HIT_FIELDS, "query": knn_query})]
        if query_text.strip():
            keyword_query = {
                "bool": {
                    "must": [
                        {
                            "multi_match": {
                                "query": query_text,
                                "fields": [f"title^{TITLE_BOOST:g}", "text"],
                            }
                        }
                    ],
                    "filter": [workspace_filter],
                }
            }
            legs.append(self._hits({"size": size, "_source": _HIT_FIELDS, "query": keyword_query}))

        sources: dict[str, dict[str, Any]] = {}
        rankings = []
        for hits in legs:
            ranking = []
            for hit in hits:
                source = hit["_source"]
                if source.get("workspaceId") != workspace_id:
                    logger.warning(
                        "dropped a hit of another workspace",
                        extra={"workspace_id": workspace_id, "doc_id": hit["_id"]},
                    )
                    continue
                sources[hit["_id"]] = source
                ranking.append(hit["_id"])
            rankings.append(ranking)
        return [
            SearchHit(
                item_id=sources[doc_id]["itemId"],
                title=sources[doc_id]["title"],
                chunk=sources[doc_id]["text"],
                chunk_index=sources[doc_id]["chunkIndex"],
                score=score,
            )
            for doc_id, score in reciprocal_rank_fusion(rankings)[:k]
        ]

    def count(self, workspace_id: str) -> int:
        response = self._call(
            self._client.count,
            index=self._index,
            body={"query": {"term": {"workspaceId": workspace_id}}},
        )
        return int(response["count"])

    def _check_existing_dimension(self) -> None:
        mappings = self._call(self._client.indices.get_mapping, index=self._index)
        properties = next(iter(mappings.values()))["mappings"]["properties"]
        existing = properties["vector"]["dimension"]
        if existing != self._dimension:
            raise VectorIndexError(
                f"index {self._index} holds vectors of dimension {existing}, "
                f"the embeddings have {self._dimension}: use another index or re-create it"
            )

    def _document(self, chunk: ChunkRecord, generation: str | None) -> dict[str, Any]:
        document = {
            "workspaceId": chunk.workspace_id,
            "itemId": chunk.item_id,
            "title": chunk.title,
            "text": chunk.text,
            "chunkIndex": chunk.chunk_index,
            "totalChunks": chunk.total_chunks,
            "type": chunk.type,
            "mimeType": chunk.mime_type,
            "fileName": chunk.file_name,
            "vector": unit_vector(chunk.vector, self._dimension),
        }
        if generation is not None:
            document["generation"] = generation
        return document

    def _hits(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return self._call(self._client.search, index=self._index, body=body)["hits"]["hits"]

    def _item_ids(
        self, workspace_id: str, item_id: str, except_generation: str | None
    ) -> list[str]:
        query: dict[str, Any] = {"filter": _item_filter(workspace_id, item_id)}
        if except_generation is not None:
            query["must_not"] = [{"term": {"generation": except_generation}}]
        response = self._call(
            self._client.search,
            index=self._index,
            body={
                "size": MAX_CHUNKS_PER_ITEM,
                "_source": False,
                "track_total_hits": True,
                "query": {"bool": query},
            },
        )
        hits = response["hits"]["hits"]
        total = response["hits"]["total"]["value"]
        if total > len(hits):
            raise VectorIndexError(
                f"item {workspace_id}/{item_id} has {total} chunks to delete, "
                f"more than one lookup returns ({MAX_CHUNKS_PER_ITEM})"
            )
        return [hit["_id"] for hit in hits]

    def _delete_ids(self, doc_ids: Sequence[str]) -> None:
        self._bulk(
            [
                _BulkAction(label=doc_id, header={"delete": {"_index": self._index, "_id": doc_id}})
                for doc_id in doc_ids
            ]
        )

    def _delete_by_query(self, filters: list[dict[str, Any]]) -> None:
        response = self._call(
            self._client.delete_by_query,
            index=self._index,
            body={"query": {"bool": {"filter": filters}}},
            refresh=True,
            conflicts="proceed",
        )
        if response.get("failures"):
            raise VectorIndexError(
                f"delete_by_query on {self._index} failed: {response['failures'][:3]}"
            )

    def _bulk(self, actions: Sequence[_BulkAction], **params: Any) -> None:
        """Send actions with ``_bulk`` in batches of BULK_BATCH_SIZE."""
        for start in range(0, len(actions), BULK_BATCH_SIZE):
            self._bulk_batch(actions[start : start + BULK_BATCH_SIZE], **params)

    def _bulk_batch(self, actions: Sequence[_BulkAction], **params: Any) -> None:
        """One ``_bulk`` request; retry the items answered 429, fail on any other error."""
        pending = list(actions)
        for attempt in range(self._throttle_retries + 1):
            if attempt:
                self._back_off(attempt)
            body: list[dict[str, Any]] = []
            for action in pending:
                body.append(action.header)
                if action.source is not None:
                    body.append(action.source)
            response = self._call(self._client.bulk, body=body, **params)
            if not response.get("errors"):
                return
            throttled, failures = [], []
            # Bulk answers one item per action, in request order.
            for action, item in zip(pending, response["items"], strict=True):
                operation, result = next(iter(item.items()))
                status = result.get("status", 200)
                if status == 429:
                    throttled.append(action)
                elif status >= 300 and not (operation == "delete" and status == 404):
                    error = result.get("error") or {}
                    failures.append(
                        f"{action.label} ({status} {error.get('type')}: {error.get('reason')})"
                    )
            if failures:
                raise VectorIndexError(
                    f"bulk {self._index}: {len(failures)} documents failed: " + "; ".join(failures)
                )
            if not throttled:
                return
            pending = throttled
        raise VectorIndexError(
            f"bulk {self._index}: still throttled after {self._throttle_retries} retries: "
            + ", ".join(action.label for action in pending)
        )

    def _call(self, method: Any, **kwargs: Any) -> Any:
        """Call the client, retrying a whole request answered 429 (Too Many Requests)."""
        from opensearchpy import TransportError

        attempt = 0
        while True:
            try:
                return method(**kwargs)
            except TransportError as error:
                attempt += 1
                if error.status_code != 429 or attempt > self._throttle_retries:
                    raise
            self._back_off(attempt)

    def _back_off(self, attempt: int) -> None:
        time.sleep(self._throttle_backoff_seconds * 2 ** (attempt - 1))


def _item_filter(workspace_id: str, item_id: str) -> list[dict[str, Any]]:
    return [{"term": {"workspaceId": workspace_id}}, {"term": {"itemId": item_id}}]

