"""The vector index of knowledge-item chunks: one interface, two backends, hybrid search.

- :class:`OpenSearchVectorIndex` talks to an OpenSearch managed domain (SigV4 service
  ``es``) or a Serverless vector collection (``aoss``) through opensearch-py.
- :class:`LocalVectorIndex` keeps everything in one SQLite file for the embedded local
  runtime: exact cosine k-NN with numpy and BM25 keyword search (SQLite FTS5, or a BM25
  computed in Python over a token table when the interpreter's SQLite lacks FTS5).

Both run the same hybrid search: a k-NN leg and a keyword leg, each restricted to the
workspace, fused by :func:`reciprocal_rank_fusion`. Every hit is checked again to belong
to the workspace before it is returned.

numpy is imported inside the local backend only: it belongs to the ``local`` extra, not to
the Lambda layer.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from crmjobs import config

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)

RRF_RANK_CONSTANT = 60
"""The k of reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009)."""

TITLE_BOOST = 2.0
"""Weight of a title match against a body match in the keyword leg."""

BULK_BATCH_SIZE = 100
"""Documents per ``_bulk`` request: 100 chunks with 1,024-dimension vectors stay near 2 MB,
well under the 10 MiB request limit of the smallest OpenSearch Service instances."""

MAX_CHUNKS_PER_ITEM = 10_000
"""OpenSearch's default index.max_result_window bounds one id lookup on Serverless."""

_TOKEN = re.compile(r"[^\W_]+")


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


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], rank_constant: int = RRF_RANK_CONSTANT
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: each id scores the sum of 1 / (rank_constant + rank).

    Best first; ties are broken by id so that both backends order equal scores alike.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (rank_constant + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def candidates_per_leg(k: int) -> int:
    """How many hits each leg fetches: fusion needs more than k to re-rank well."""
    return max(4 * k, 20)


#: Words the keyword leg ignores: Lucene's English stop words plus the question and
#: helper words of the questions agents ask ("how much does it cost"), which would
#: otherwise rank any chunk that says "how" or "does". Both backends use this one list.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their"
    " then there these they this to was will with"
    " about can could did do does get has have how i me much many my our should"
    " what when where which who why would you your".split()
)
TEXT_ANALYZER = "crmjobs_english"


def query_terms(text: str) -> list[str]:
    """Lower-cased word tokens, first occurrence order, split like FTS5's unicode61."""
    return list(
        dict.fromkeys(term for term in _TOKEN.findall(text.lower()) if term not in STOP_WORDS)
    )


def unit_vector(vector: Sequence[float], dimension: int) -> list[float]:
    """The L2-normalised vector; rejects a wrong dimension and the zero vector."""
    if len(vector) != dimension:
        raise ValueError(f"vector has dimension {len(vector)}, the index expects {dimension}")
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("vector must be finite and non-zero")
    return [float(x) / norm for x in vector]


def _check_replacement(
    workspace_id: str, item_id: str, chunks: Sequence[ChunkRecord], dimension: int
) -> None:
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


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


# --------------------------------------------------------------------------- OpenSearch


def opensearch_client(endpoint: str, region: str, service: str) -> OpenSearch:
    """An opensearch-py client signing with SigV4 from boto3's default credentials.

    ``service`` is ``es`` for a managed domain, ``aoss`` for a Serverless collection. The
    credentials object is boto3's refreshable one: the signer takes a fresh frozen copy
    for every request, so assumed-role credentials roll over in long-lived processes.
    """
    import boto3
    from opensearchpy import OpenSearch, RequestsAWSV4SignerAuth, RequestsHttpConnection

    if service not in ("es", "aoss"):
        raise ValueError(f"OpenSearch service must be 'es' or 'aoss', got {service!r}")
    credentials = boto3.Session().get_credentials()
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
        _check_replacement(workspace_id, item_id, chunks, self._dimension)
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
        _check_k(k)
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


# --------------------------------------------------------------------------- local


def fts5_available(connection: sqlite3.Connection) -> bool:
    """Whether this SQLite can create and query an FTS5 table (checked for real)."""
    try:
        connection.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(body)")
        connection.execute("INSERT INTO temp.fts5_probe (body) VALUES ('probe')")
        connection.execute(
            "SELECT bm25(fts5_probe) FROM temp.fts5_probe WHERE fts5_probe MATCH 'probe'"
        ).fetchall()
        connection.execute("DROP TABLE temp.fts5_probe")
    except sqlite3.OperationalError:
        return False
    return True


SQLITE_CACHE_KIB = 65_536
"""SQLite page cache of the local index (the default 2 MiB makes cold loads re-read disk)."""

CACHED_WORKSPACES = 8
"""Workspaces whose vector matrix the local index keeps in memory."""

_BM25_K1 = 1.2
_BM25_B = 0.75

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    total_chunks INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    type TEXT NOT NULL,
    mime_type TEXT,
    file_name TEXT,
    token_count INTEGER NOT NULL, -- document length for the Python BM25
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_item ON chunks (workspace_id, item_id);
CREATE TABLE IF NOT EXISTS workspace_versions (
    workspace_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
"""

#: Porter stemming, as the OpenSearch analyzer ("costs" finds "cost").
_FTS5_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts"
    " USING fts5(title, text, tokenize = 'porter unicode61');"
)

_TERMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk_terms (
    workspace_id TEXT NOT NULL,
    term TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    weighted_frequency REAL NOT NULL,
    PRIMARY KEY (workspace_id, term, chunk_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_terms_by_chunk ON chunk_terms (chunk_id);
"""


class LocalVectorIndex:
    """Chunks in one SQLite file: exact k-NN with numpy, BM25 keyword search.

    A search loads the vectors of the one workspace it serves (float32, stored
    L2-normalised so a dot product is the cosine) and keeps that matrix in memory for the
    next search until the workspace's version, bumped by every write to it (from this
    process or another), changes. The keyword engine (``fts5`` or ``python``) is chosen
    when the file is created and kept with it. One connection shared by all threads,
    serialised by a lock; WAL lets other processes read meanwhile.
    """

    def __init__(self, path: str | os.PathLike[str], dimension: int) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._dimension = dimension
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self._matrices: OrderedDict[str, _WorkspaceMatrix] = OrderedDict()
        self._keyword_engine = self._open()

    @property
    def keyword_engine(self) -> str:
        return self._keyword_engine

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def ensure_index(self) -> None:
        """The schema is created when the file is opened; nothing is left to do."""

    def replace_item_chunks(
        self, workspace_id: str, item_id: str, chunks: Sequence[ChunkRecord]
    ) -> None:
        """Delete the item's rows and insert the new ones in one transaction (atomic)."""
        import numpy as np

        _check_replacement(workspace_id, item_id, chunks, self._dimension)
        blobs = [
            np.asarray(unit_vector(chunk.vector, self._dimension), dtype=np.float32).tobytes()
            for chunk in chunks
        ]
        with self._transaction() as connection:
            self._delete_rows(connection, workspace_id, item_id)
            _bump_version(connection, workspace_id)
            for chunk, blob in zip(chunks, blobs, strict=True):
                doc_id = chunk_id(workspace_id, item_id, chunk.chunk_index)
                cursor = connection.execute(
                    "INSERT INTO chunks (chunk_id, workspace_id, item_id, chunk_index,"
                    " total_chunks, title, text, type, mime_type, file_name, token_count, vector)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc_id,
                        workspace_id,
                        item_id,
                        chunk.chunk_index,
                        chunk.total_chunks,
                        chunk.title,
                        chunk.text,
                        chunk.type,
                        chunk.mime_type,
                        chunk.file_name,
                        len(_TOKEN.findall(chunk.title)) + len(_TOKEN.findall(chunk.text)),
                        blob,
                    ),
                )
                if self._keyword_engine == "fts5":
                    connection.execute(
                        "INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)",
                        (cursor.lastrowid, chunk.title, chunk.text),
                    )
                else:
                    connection.executemany(
                        "INSERT INTO chunk_terms VALUES (?, ?, ?, ?)",
                        _term_rows(workspace_id, doc_id, chunk.title, chunk.text),
                    )

    def delete_item(self, workspace_id: str, item_id: str) -> None:
        with self._transaction() as connection:
            self._delete_rows(connection, workspace_id, item_id)
            _bump_version(connection, workspace_id)

    def search(
        self, workspace_id: str, query_text: str, query_vector: Sequence[float], k: int = 5
    ) -> list[SearchHit]:
        _check_k(k)
        size = candidates_per_leg(k)
        query = unit_vector(query_vector, self._dimension)
        terms = query_terms(query_text)
        with self._lock:
            rankings = [self._nearest(workspace_id, query, size)]
            if terms:
                if self._keyword_engine == "fts5":
                    rankings.append(self._fts5_ranking(workspace_id, terms, size))
                else:
                    rankings.append(self._python_bm25_ranking(workspace_id, terms, size))
            fused = reciprocal_rank_fusion(rankings)[:k]
            placeholders = ",".join("?" * len(fused))
            rows = self._connection.execute(
                "SELECT chunk_id, workspace_id, item_id, title, text, chunk_index FROM chunks"
                f" WHERE chunk_id IN ({placeholders})",
                [doc_id for doc_id, _ in fused],
            ).fetchall()
        by_id = {row[0]: row for row in rows if row[1] == workspace_id}
        return [
            SearchHit(
                item_id=by_id[doc_id][2],
                title=by_id[doc_id][3],
                chunk=by_id[doc_id][4],
                chunk_index=by_id[doc_id][5],
                score=score,
            )
            for doc_id, score in fused
            if doc_id in by_id
        ]

    def count(self, workspace_id: str) -> int:
        with self._lock:
            (total,) = self._connection.execute(
                "SELECT count(*) FROM chunks WHERE workspace_id = ?", (workspace_id,)
            ).fetchone()
        return int(total)

    def _open(self) -> str:
        """Create the schema; return the keyword engine the file was created with."""
        with self._transaction() as connection:
            _execute_script(connection, _SCHEMA)
            settings = dict(connection.execute("SELECT name, value FROM settings").fetchall())
            if not settings:
                engine = "fts5" if fts5_available(connection) else "python"
                settings = {"dimension": str(self._dimension), "keyword_engine": engine}
                connection.executemany("INSERT INTO settings VALUES (?, ?)", settings.items())
                _execute_script(connection, _FTS5_SCHEMA if engine == "fts5" else _TERMS_SCHEMA)
        if int(settings["dimension"]) != self._dimension:
            raise ValueError(
                f"{self._path} holds vectors of dimension {settings['dimension']}, "
                f"the embeddings have {self._dimension}: use another LOCAL_DATA_DIR"
            )
        if settings["keyword_engine"] == "fts5" and not fts5_available(self._connection):
            raise VectorIndexError(f"{self._path} was built with FTS5, this SQLite lacks it")
        return settings["keyword_engine"]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _delete_rows(self, connection: sqlite3.Connection, workspace_id: str, item_id: str) -> None:
        item = (workspace_id, item_id)
        if self._keyword_engine == "fts5":
            connection.execute(
                "DELETE FROM chunks_fts WHERE rowid IN"
                " (SELECT id FROM chunks WHERE workspace_id = ? AND item_id = ?)",
                item,
            )
        else:
            connection.execute(
                "DELETE FROM chunk_terms WHERE chunk_id IN"
                " (SELECT chunk_id FROM chunks WHERE workspace_id = ? AND item_id = ?)",
                item,
            )
        connection.execute("DELETE FROM chunks WHERE workspace_id = ? AND item_id = ?", item)

    def _nearest(self, workspace_id: str, query: list[float], size: int) -> list[str]:
        import numpy as np

        loaded = self._workspace_matrix(workspace_id)
        if not loaded.chunk_ids:
            return []
        similarities = loaded.matrix @ np.asarray(query, dtype=np.float32)
        if len(loaded.chunk_ids) > size:
            top = np.argpartition(-similarities, size)[:size]
        else:
            top = np.arange(len(loaded.chunk_ids))
        best_first = top[np.argsort(-similarities[top], kind="stable")]
        return [loaded.chunk_ids[position] for position in best_first]

    def _workspace_matrix(self, workspace_id: str) -> _WorkspaceMatrix:
        """The workspace's vectors, from memory while its version is unchanged."""
        import numpy as np

        row = self._connection.execute(
            "SELECT version FROM workspace_versions WHERE workspace_id = ?", (workspace_id,)
        ).fetchone()
        version = row[0] if row else 0
        cached = self._matrices.get(workspace_id)
        if cached is not None and cached.version == version:
            self._matrices.move_to_end(workspace_id)
            return cached
        rows = self._connection.execute(
            "SELECT chunk_id, vector FROM chunks WHERE workspace_id = ?", (workspace_id,)
        ).fetchall()
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
        loaded = _WorkspaceMatrix(
            version=version,
            chunk_ids=[row[0] for row in rows],
            matrix=matrix.reshape(len(rows), self._dimension),
        )
        self._matrices[workspace_id] = loaded
        if len(self._matrices) > CACHED_WORKSPACES:
            self._matrices.popitem(last=False)
        return loaded

    def _fts5_ranking(self, workspace_id: str, terms: list[str], size: int) -> list[str]:
        match = " OR ".join(f'"{term}"' for term in terms)
        rows = self._connection.execute(
            "SELECT chunks.chunk_id FROM chunks_fts JOIN chunks ON chunks.id = chunks_fts.rowid"
            " WHERE chunks_fts MATCH ? AND chunks.workspace_id = ?"
            f" ORDER BY bm25(chunks_fts, {TITLE_BOOST}, 1.0), chunks.chunk_id LIMIT ?",
            (match, workspace_id, size),
        ).fetchall()
        return [row[0] for row in rows]

    def _python_bm25_ranking(self, workspace_id: str, terms: list[str], size: int) -> list[str]:
        """Okapi BM25 (k1 1.2, b 0.75, Lucene's non-negative idf) over the workspace."""
        document_count, average_length = self._connection.execute(
            "SELECT count(*), avg(token_count) FROM chunks WHERE workspace_id = ?",
            (workspace_id,),
        ).fetchone()
        if not average_length:
            return []
        placeholders = ",".join("?" * len(terms))
        postings = self._connection.execute(
            "SELECT chunk_terms.term, chunk_terms.chunk_id, chunk_terms.weighted_frequency,"
            " chunks.token_count FROM chunk_terms JOIN chunks USING (chunk_id)"
            f" WHERE chunk_terms.workspace_id = ? AND chunk_terms.term IN ({placeholders})",
            [workspace_id, *terms],
        ).fetchall()
        document_frequency: dict[str, int] = {}
        for term, *_ in postings:
            document_frequency[term] = document_frequency.get(term, 0) + 1
        scores: dict[str, float] = {}
        for term, doc_id, frequency, length in postings:
            df = document_frequency[term]
            idf = math.log(1.0 + (document_count - df + 0.5) / (df + 0.5))
            norm = _BM25_K1 * (1.0 - _BM25_B + _BM25_B * length / average_length)
            scores[doc_id] = scores.get(doc_id, 0.0) + idf * frequency * (_BM25_K1 + 1) / (
                frequency + norm
            )
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return [doc_id for doc_id, _ in ranked[:size]]


@dataclass(frozen=True)
class _WorkspaceMatrix:
    version: int
    chunk_ids: list[str]
    matrix: Any
    """numpy float32 array, one unit row per chunk id."""


def _bump_version(connection: sqlite3.Connection, workspace_id: str) -> None:
    connection.execute(
        "INSERT INTO workspace_versions VALUES (?, 1)"
        " ON CONFLICT (workspace_id) DO UPDATE SET version = version + 1",
        (workspace_id,),
    )


def _execute_script(connection: sqlite3.Connection, script: str) -> None:
    """Run DDL statements one by one (``executescript`` would commit the transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _term_rows(
    workspace_id: str, doc_id: str, title: str, text: str
) -> list[tuple[str, str, str, float]]:
    """Token-table rows of one chunk: title occurrences weigh TITLE_BOOST, body ones 1."""
    title_tokens = _TOKEN.findall(title.lower())
    text_tokens = _TOKEN.findall(text.lower())
    frequencies: dict[str, float] = {}
    for token in title_tokens:
        frequencies[token] = frequencies.get(token, 0.0) + TITLE_BOOST
    for token in text_tokens:
        frequencies[token] = frequencies.get(token, 0.0) + 1.0
    return [(workspace_id, term, doc_id, frequency) for term, frequency in frequencies.items()]


# --------------------------------------------------------------------------- factory


def get_vector_index(dimension: int) -> VectorIndex:
    """The process's vector index, chosen by ``VECTOR_BACKEND`` (``opensearch`` or ``local``).

    Built on first use and cached per process and configuration; it does no I/O against
    OpenSearch until called (callers run ``ensure_index`` once, it is idempotent).
    """
    backend = config.env("VECTOR_BACKEND", "")
    if backend == "opensearch":
        return _opensearch_index(
            config.require("OPENSEARCH_ENDPOINT"),
            config.region(),
            config.env("OPENSEARCH_SERVICE", "es"),
            config.env("OPENSEARCH_INDEX", "knowledge-chunks"),
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
    return OpenSearchVectorIndex(
        opensearch_client(endpoint, region, service),
        index_name,
        dimension,
        serverless=service == "aoss",
    )


@functools.cache
def _local_index(path: str, dimension: int) -> LocalVectorIndex:
    return LocalVectorIndex(path, dimension)
