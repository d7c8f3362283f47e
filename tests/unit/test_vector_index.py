"""The vector index: one contract suite on every backend, plus OpenSearch request shapes.

OpenSearch has no server here. Its adapter runs against ``OpenSearchWire``, an opensearch-py
``Connection`` that records every request and answers in OpenSearch's documented response
formats, interpreting just the queries the adapter sends; the asserts check the exact
request bodies. Set ``OPENSEARCH_TEST_ENDPOINT`` (and ``AWS_REGION``, optionally
``OPENSEARCH_TEST_SERVICE=es|aoss``) to also run the contract suite on a live cluster; a
Serverless collection needs waits for its eventual consistency that this suite does not
make, so point it at a managed domain.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opensearchpy import Connection, OpenSearch, RequestsHttpConnection, TransportError

from crmjobs.adapters.vector_index import (
    ChunkRecord,
    VectorIndex,
    VectorIndexError,
    get_vector_index,
)
from crmjobs.adapters.vector_index import local as sqlite_backend
from crmjobs.adapters.vector_index.local import LocalVectorIndex
from crmjobs.adapters.vector_index.opensearch import OpenSearchVectorIndex, opensearch_client
from crmjobs.domain.search import STOP_WORDS

DIMENSION = 8
INDEX = "chunks"


def axis(position: int, tilt: int | None = None) -> list[float]:
    """A unit basis vector, optionally tilted a little towards another axis."""
    vector = [0.0] * DIMENSION
    vector[position] = 1.0
    if tilt is not None:
        vector[tilt] = 0.3
    return vector


def chunks(
    workspace_id: str,
    item_id: str,
    texts: Sequence[str],
    vectors: Sequence[Sequence[float]],
    title: str = "Handbook",
) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            workspace_id=workspace_id,
            item_id=item_id,
            title=title,
            text=text,
            chunk_index=position,
            total_chunks=len(texts),
            type="document",
            mime_type="text/plain",
            file_name=f"{item_id}.txt",
            vector=vector,
        )
        for position, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]


# --------------------------------------------------------------------------- the wire double

_WORD = re.compile(r"[^\W_]+")


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    """Decoded JSON; for ``_bulk`` the list of NDJSON lines."""


@dataclass
class WireState:
    """What the double holds: the recorded requests, the documents, scripted answers."""

    serverless: bool
    requests: list[RecordedRequest] = field(default_factory=list)
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    scripted_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Served in order, before any interpretation, to the next requests."""
    item_failures: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = field(
        default_factory=dict
    )
    """(itemId, chunkIndex) -> bulk item answers (status, error) served to its next writes."""
    ignore_filters: bool = False
    """Pretend the cluster dropped the filters (defence-in-depth tests)."""

    def sent(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]


class OpenSearchWire(Connection):
    """An opensearch-py Connection answering from ``WireState`` in OpenSearch's formats."""

    def __init__(self, wire: WireState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wire = wire

    def perform_request(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
        ignore: Sequence[int] = (),
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        decoded_params = {
            name: value.decode() if isinstance(value, bytes) else str(value)
            for name, value in (params or {}).items()
        }
        decoded_body = None
        if body:
            text = body.decode()
            if url.endswith("/_bulk"):
                decoded_body = [json.loads(line) for line in text.splitlines() if line]
            else:
                decoded_body = json.loads(text)
        request = RecordedRequest(method, url, decoded_params, decoded_body)
        self.wire.requests.append(request)
        if self.wire.scripted_answers:
            status, payload = self.wire.scripted_answers.pop(0)
        else:
            status, payload = self._answer(request)
        raw = json.dumps(payload) if payload is not None else ""
        if not 200 <= status < 300 and status not in ignore:
            self._raise_error(status, raw, "application/json")
        return status, {"content-type": "application/json"}, raw

    def _answer(self, request: RecordedRequest) -> tuple[int, dict[str, Any] | None]:
        wire = self.wire
        parts = request.path.strip("/").split("/")
        if wire.serverless:
            assert "refresh" not in request.params, "Serverless takes no refresh parameter"
            assert parts[-1] != "_delete_by_query", "Serverless has no _delete_by_query"
        route = (request.method, parts[-1] if parts[-1].startswith("_") else "")
        if route == ("HEAD", ""):
            return (200, None) if parts[0] in wire.mappings else (404, None)
        if route == ("PUT", ""):
            return self._create_index(parts[0], request.body)
        if route == ("GET", "_mapping"):
            return 200, {parts[0]: {"mappings": wire.mappings[parts[0]]["mappings"]}}
        if route == ("POST", "_bulk"):
            return self._bulk(request.body)
        if route == ("POST", "_search"):
            return self._search(parts[0], request.body)
        if route == ("POST", "_count"):
            matching = self._matching(parts[0], request.body["query"])
            return 200, {"count": len(matching), "_shards": _SHARDS}
        if route == ("POST", "_delete_by_query"):
            return self._delete_by_query(parts[0], request.body["query"])
        raise AssertionError(f"the adapter sent an unexpected request: {request}")

    def _create_index(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if name in self.wire.mappings:
            error = {
                "type": "resource_already_exists_exception",
                "reason": f"index [{name}] already exists",
                "index": name,
            }
            return 400, {"error": {"root_cause": [error], **error}, "status": 400}
        self.wire.mappings[name] = body
        self.wire.documents[name] = {}
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _bulk(self, lines: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        items, errors, position = [], False, 0
        while position < len(lines):
            operation, meta = next(iter(lines[position].items()))
            index = meta["_index"]
            documents = self.wire.documents[index]
            if operation == "delete":
                position += 1
                found = documents.pop(meta["_id"], None) is not None
                items.append(
                    {
                        "delete": {
                            "_index": index,
                            "_id": meta["_id"],
                            "result": "deleted" if found else "not_found",
                            "status": 200 if found else 404,
                        }
                    }
                )
                continue
            assert operation == "index", operation
            if self.wire.serverless:
                assert "_id" not in meta, "Serverless vector collections assign document ids"
            source = lines[position + 1]
            position += 2
            doc_id = meta.get("_id") or uuid.uuid4().hex
            failures = self.wire.item_failures.get((source["itemId"], source["chunkIndex"]))
            if failures:
                status, error = failures.pop(0)
                items.append(
                    {"index": {"_index": index, "_id": doc_id, "status": status, "error": error}}
                )
                errors = True
                continue
            existed = doc_id in documents
            documents[doc_id] = source
            items.append(
                {
                    "index": {
                        "_index": index,
                        "_id": doc_id,
                        "_version": 1,
                        "result": "updated" if existed else "created",
                        "_shards": {"total": 2, "successful": 2, "failed": 0},
                        "status": 200 if existed else 201,
                    }
                }
            )
        return 200, {"took": 3, "errors": errors, "items": items}

    def _search(self, index: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        query = body["query"]
        if "knn" in query:
            vector_field, clause = next(iter(query["knn"].items()))
            candidates = self._matching(index, clause.get("filter"))
            scored = [
                (doc_id, source, _inner_product_score(source[vector_field], clause["vector"]))
                for doc_id, source in candidates.items()
            ]
            scored.sort(key=lambda hit: (-hit[2], hit[0]))
            scored = scored[: clause["k"]]
        else:
            boolean = query["bool"]
            candidates = self._matching(index, {"bool": {**boolean, "must": []}})
            scored = []
            for doc_id, source in candidates.items():
                score = sum(
                    _multi_match_score(source, clause["multi_match"])
                    for clause in boolean.get("must", [])
                )
                if score > 0 or not boolean.get("must"):
                    scored.append((doc_id, source, score))
            scored.sort(key=lambda hit: (-hit[2], hit[0]))
        shown = scored[: body.get("size", 10)]
        hits = []
        for doc_id, source, score in shown:
            hit: dict[str, Any] = {"_index": index, "_id": doc_id, "_score": score}
            if body.get("_source") is not False:
                wanted = body.get("_source")
                hit["_source"] = {k: v for k, v in source.items() if wanted is None or k in wanted}
            hits.append(hit)
        return 200, {
            "took": 2,
            "timed_out": False,
            "_shards": _SHARDS,
            "hits": {
                "total": {"value": len(scored), "relation": "eq"},
                "max_score": max((hit[2] for hit in shown), default=None),
                "hits": hits,
            },
        }

    def _delete_by_query(self, index: str, query: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        matching = self._matching(index, query)
        for doc_id in matching:
            del self.wire.documents[index][doc_id]
        return 200, {
            "took": 4,
            "timed_out": False,
            "total": len(matching),
            "deleted": len(matching),
            "batches": 1,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": [],
        }

    def _matching(self, index: str, query: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        return {
            doc_id: source
            for doc_id, source in self.wire.documents[index].items()
            if self.wire.ignore_filters or _matches(source, query)
        }


_SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}


def _matches(source: dict[str, Any], query: dict[str, Any] | None) -> bool:
    """The filter clauses the adapter sends: term, range (gte), bool filter/must_not."""
    if query is None:
        return True
    ((kind, clause),) = query.items()
    if kind == "term":
        ((name, value),) = clause.items()
        return source.get(name) == value
    if kind == "range":
        ((name, bounds),) = clause.items()
        return source[name] >= bounds["gte"]
    if kind == "bool":
        assert not clause.get("must"), "scoring clauses are not filters"
        return all(_matches(source, c) for c in clause.get("filter", [])) and not any(
            _matches(source, c) for c in clause.get("must_not", [])
        )
    raise AssertionError(f"unexpected filter {query}")


def _inner_product_score(stored: Sequence[float], query: Sequence[float]) -> float:
    """The k-NN plugin's score for faiss innerproduct."""
    product = sum(a * b for a, b in zip(stored, query, strict=True))
    return product + 1 if product >= 0 else 1 / (1 - product)


def _multi_match_score(source: dict[str, Any], clause: dict[str, Any]) -> float:
    words = set(_WORD.findall(clause["query"].lower()))
    score = 0.0
    for spec in clause["fields"]:
        name, _, boost = spec.partition("^")
        field_words = _WORD.findall(str(source.get(name, "")).lower())
        score += float(boost or 1) * sum(word in words for word in field_words)
    return score


def wire_client(state: WireState) -> OpenSearch:
    return OpenSearch(
        hosts=[{"host": "search.example.test", "port": 443}],
        use_ssl=True,
        connection_class=OpenSearchWire,
        wire=state,
    )


def wire_index(state: WireState, throttle_retries: int = 4) -> OpenSearchVectorIndex:
    return OpenSearchVectorIndex(
        wire_client(state),
        INDEX,
        DIMENSION,
        serverless=state.serverless,
        throttle_retries=throttle_retries,
        throttle_backoff_seconds=0.0,
    )


# --------------------------------------------------------------------------- the contract


@pytest.fixture(
    params=[
        "local-fts5",
        "local-python-bm25",
        "opensearch-wire-domain",
        "opensearch-wire-serverless",
        "opensearch-live",
    ]
)
def index(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> Iterator[VectorIndex]:
    backend = request.param
    if backend.startswith("local"):
        if backend == "local-python-bm25":
            monkeypatch.setattr(sqlite_backend, "fts5_available", lambda connection: False)
        local = LocalVectorIndex(tmp_path / "vectors.sqlite3", DIMENSION)
        assert local.keyword_engine == backend.removeprefix("local-").removesuffix("-bm25")
        local.ensure_index()
        yield local
        local.close()
    elif backend == "opensearch-live":
        endpoint = os.environ.get("OPENSEARCH_TEST_ENDPOINT")
        if not endpoint:
            pytest.skip("OPENSEARCH_TEST_ENDPOINT is not set")
        service = os.environ.get("OPENSEARCH_TEST_SERVICE", "es")
        client = opensearch_client(endpoint, os.environ["AWS_REGION"], service)
        name = f"crmjobs-test-{uuid.uuid4().hex[:12]}"
        live = OpenSearchVectorIndex(client, name, DIMENSION, serverless=service == "aoss")
        live.ensure_index()
        yield live
        client.indices.delete(index=name)
    else:
        wired = wire_index(WireState(serverless=backend.endswith("serverless")))
        wired.ensure_index()
        yield wired


def test_search_finds_the_indexed_item(index: VectorIndex) -> None:
    index.replace_item_chunks(
        "ws-1",
        "pricing",
        chunks("ws-1", "pricing", ["Our pricing has three tiers."], [axis(0)], "Pricing"),
    )
    index.replace_item_chunks(
        "ws-1",
        "onboarding",
        chunks("ws-1", "onboarding", ["How to onboard a customer."], [axis(1)]),
    )

    hits = index.search("ws-1", "pricing tiers", axis(0, tilt=1), k=5)

    assert [(hit.item_id, hit.chunk_index) for hit in hits] == [("pricing", 0), ("onboarding", 0)]
    assert hits[0].title == "Pricing"
    assert hits[0].chunk == "Our pricing has three tiers."
    assert hits[0].score > hits[1].score


def test_shorter_reindex_leaves_no_stale_chunks(index: VectorIndex) -> None:
    texts = [f"Section {n} of the manual." for n in range(4)] + ["An obsolete appendix."]
    index.replace_item_chunks(
        "ws-1", "manual", chunks("ws-1", "manual", texts, [axis(n) for n in range(5)])
    )
    assert index.count("ws-1") == 5

    index.replace_item_chunks(
        "ws-1", "manual", chunks("ws-1", "manual", texts[:2], [axis(0), axis(1)])
    )

    assert index.count("ws-1") == 2
    hits = index.search("ws-1", "obsolete appendix", axis(4), k=10)
    assert sorted(hit.chunk_index for hit in hits) == [0, 1]


def test_delete_item_removes_only_that_item(index: VectorIndex) -> None:
    index.replace_item_chunks("ws-1", "keep", chunks("ws-1", "keep", ["Renewal terms."], [axis(0)]))
    index.replace_item_chunks(
        "ws-1",
        "drop",
        chunks("ws-1", "drop", ["Refund policy.", "Refund steps."], [axis(1), axis(2)]),
    )

    index.delete_item("ws-1", "drop")

    assert index.count("ws-1") == 1
    assert [hit.item_id for hit in index.search("ws-1", "refund policy", axis(1), k=5)] == ["keep"]


def test_workspaces_never_see_each_others_chunks(index: VectorIndex) -> None:
    query = "quarterly revenue forecast"
    index.replace_item_chunks(
        "ws-a", "doc-1", chunks("ws-a", "doc-1", ["Office plants care."], [axis(5)])
    )
    # Same item id in another workspace, with a far better match on both legs.
    index.replace_item_chunks(
        "ws-b", "doc-1", chunks("ws-b", "doc-1", [f"The {query}."], [axis(0)])
    )

    hits = index.search("ws-a", query, axis(0), k=5)

    assert [hit.chunk for hit in hits] == ["Office plants care."]
    index.delete_item("ws-b", "doc-1")
    assert (index.count("ws-a"), index.count("ws-b")) == (1, 0)
    assert index.search("ws-b", query, axis(0)) == []


def test_k_limits_the_hits(index: VectorIndex) -> None:
    for n in range(12):
        item = f"item-{n}"
        index.replace_item_chunks(
            "ws-1",
            item,
            chunks(
                "ws-1",
                item,
                [f"Note {n} about churn."],
                [axis(n % DIMENSION, tilt=(n + 1) % DIMENSION)],
            ),
        )

    hits = index.search("ws-1", "churn", axis(0), k=3)

    assert len(hits) == 3
    assert len({hit.item_id for hit in hits}) == 3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len(index.search("ws-1", "churn", axis(0), k=1)) == 1


def test_reindexing_the_same_chunks_changes_nothing(index: VectorIndex) -> None:
    records = chunks("ws-1", "faq", ["Password resets.", "Two-factor setup."], [axis(0), axis(1)])
    index.replace_item_chunks("ws-1", "faq", records)
    first = index.search("ws-1", "password", axis(0), k=5)

    index.replace_item_chunks("ws-1", "faq", records)

    assert index.count("ws-1") == 2
    assert index.search("ws-1", "password", axis(0), k=5) == first


def test_a_rare_word_is_found_by_the_keyword_leg(index: VectorIndex) -> None:
    index.replace_item_chunks(
        "ws-1",
        "travel",
        chunks(
            "ws-1",
            "travel",
            ["Hotel booking rules.", "Flight booking rules.", "Visa rules for Zanzibar."],
            [axis(0), axis(0, tilt=1), axis(7)],
        ),
    )

    hits = index.search("ws-1", "zanzibar", axis(0), k=3)

    # Last on the vector leg, first on the keyword leg: fusion ranks it first.
    assert (hits[0].item_id, hits[0].chunk_index) == ("travel", 2)


def test_writes_are_checked_against_the_contract(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="dimension"):
        index.replace_item_chunks("ws-1", "x", chunks("ws-1", "x", ["Short."], [[1.0, 0.0]]))
    with pytest.raises(ValueError, match="belongs to ws-2/x"):
        index.replace_item_chunks("ws-1", "x", chunks("ws-2", "x", ["Other."], [axis(0)]))
    with pytest.raises(ValueError, match="must not contain ':'"):
        index.replace_item_chunks("ws:1", "x", chunks("ws:1", "x", ["Colon."], [axis(0)]))
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search("ws-1", "anything", axis(0), k=0)
    assert index.count("ws-1") == 0


# --------------------------------------------------------------------------- local backend


def test_local_index_survives_reopening(tmp_path) -> None:
    path = tmp_path / "data" / "vectors.sqlite3"
    first = LocalVectorIndex(path, DIMENSION)
    first.replace_item_chunks(
        "ws-1", "plan", chunks("ws-1", "plan", ["Launch plan for Q3."], [axis(2)])
    )
    first.close()

    reopened = LocalVectorIndex(path, DIMENSION)

    assert reopened.count("ws-1") == 1
    assert [hit.chunk for hit in reopened.search("ws-1", "launch", axis(2))] == [
        "Launch plan for Q3."
    ]
    reopened.close()
    with pytest.raises(ValueError, match="dimension 8"):
        LocalVectorIndex(path, 384)


def test_local_search_sees_writes_made_through_another_connection(tmp_path) -> None:
    path = tmp_path / "vectors.sqlite3"
    reader, writer = LocalVectorIndex(path, DIMENSION), LocalVectorIndex(path, DIMENSION)
    writer.replace_item_chunks("ws-1", "a", chunks("ws-1", "a", ["Old text."], [axis(0)]))
    assert [hit.item_id for hit in reader.search("ws-1", "", axis(0))] == ["a"]

    writer.replace_item_chunks("ws-1", "b", chunks("ws-1", "b", ["New text."], [axis(1)]))
    writer.delete_item("ws-1", "a")

    assert [hit.item_id for hit in reader.search("ws-1", "", axis(0))] == ["b"]
    reader.close()
    writer.close()


def test_local_keyword_leg_ignores_query_syntax(tmp_path) -> None:
    local = LocalVectorIndex(tmp_path / "vectors.sqlite3", DIMENSION)
    local.replace_item_chunks(
        "ws-1", "a", chunks("ws-1", "a", ['Use "quotes" AND stars*'], [axis(0)])
    )

    hits = local.search("ws-1", 'quotes" OR (NEAR stars* -', axis(1))

    assert [hit.item_id for hit in hits] == ["a"]
    local.close()


# --------------------------------------------------------------------------- OpenSearch wire

EXPECTED_INDEX_BODY = {
    "settings": {
        "index": {"knn": True},
        "analysis": {
            "filter": {
                "crmjobs_stop": {"type": "stop", "stopwords": sorted(STOP_WORDS)},
                "crmjobs_stemmer": {"type": "stemmer", "language": "porter"},
            },
            "analyzer": {
                "crmjobs_english": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "crmjobs_stop", "crmjobs_stemmer"],
                }
            },
        },
    },
    "mappings": {
        "properties": {
            "workspaceId": {"type": "keyword"},
            "itemId": {"type": "keyword"},
            "type": {"type": "keyword"},
            "mimeType": {"type": "keyword"},
            "fileName": {"type": "keyword"},
            "generation": {"type": "keyword"},
            "title": {"type": "text", "analyzer": "crmjobs_english"},
            "text": {"type": "text", "analyzer": "crmjobs_english"},
            "chunkIndex": {"type": "integer"},
            "totalChunks": {"type": "integer"},
            "vector": {
                "type": "knn_vector",
                "dimension": DIMENSION,
                "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct"},
            },
        }
    },
}


def test_ensure_index_creates_the_mapping_once() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)

    index.ensure_index()
    index.ensure_index()

    assert [(r.method, r.path) for r in state.requests] == [
        ("HEAD", "/chunks"),
        ("PUT", "/chunks"),
        ("HEAD", "/chunks"),
        ("GET", "/chunks/_mapping"),
    ]
    assert state.requests[1].body == EXPECTED_INDEX_BODY


def test_ensure_index_refuses_an_index_of_another_dimension() -> None:
    state = WireState(serverless=False)
    wire_index(state).ensure_index()

    other = OpenSearchVectorIndex(wire_client(state), INDEX, 384, serverless=False)

    with pytest.raises(VectorIndexError, match="dimension 8"):
        other.ensure_index()


def test_ensure_index_tolerates_a_concurrent_create() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    state.scripted_answers.append((404, {}))  # HEAD: not there yet
    state.mappings[INDEX] = EXPECTED_INDEX_BODY  # ... then another process creates it

    index.ensure_index()

    assert [(r.method, r.path) for r in state.requests] == [("HEAD", "/chunks"), ("PUT", "/chunks")]


def _document(item_id: str, chunk_index: int, text: str, vector: list[float], **extra: Any) -> dict:
    return {
        "workspaceId": "ws-1",
        "itemId": item_id,
        "title": "Handbook",
        "text": text,
        "chunkIndex": chunk_index,
        "totalChunks": extra.pop("total_chunks"),
        "type": "document",
        "mimeType": "text/plain",
        "fileName": f"{item_id}.txt",
        "vector": vector,
        **extra,
    }


def test_domain_writes_bulk_with_deterministic_ids_then_deletes_stale_by_query() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    index.ensure_index()
    state.requests.clear()

    index.replace_item_chunks(
        "ws-1",
        "item-1",
        chunks("ws-1", "item-1", ["First.", "Second."], [[3, 4, 0, 0, 0, 0, 0, 0], axis(1)]),
    )

    bulk, delete = state.requests
    assert (bulk.method, bulk.path, bulk.params) == ("POST", "/_bulk", {"refresh": "wait_for"})
    assert bulk.body == [
        {"index": {"_index": "chunks", "_id": "ws-1:item-1:0"}},
        _document("item-1", 0, "First.", [0.6, 0.8, 0, 0, 0, 0, 0, 0], total_chunks=2),
        {"index": {"_index": "chunks", "_id": "ws-1:item-1:1"}},
        _document("item-1", 1, "Second.", axis(1), total_chunks=2),
    ]
    assert (delete.method, delete.path) == ("POST", "/chunks/_delete_by_query")
    assert delete.params == {"refresh": "true", "conflicts": "proceed"}
    assert delete.body == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"workspaceId": "ws-1"}},
                    {"term": {"itemId": "item-1"}},
                    {"range": {"chunkIndex": {"gte": 2}}},
                ]
            }
        }
    }


def test_bulk_writes_go_in_batches_and_an_empty_replace_only_deletes() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    index.ensure_index()
    state.requests.clear()
    texts = [f"Part {n}." for n in range(250)]

    index.replace_item_chunks(
        "ws-1", "long", chunks("ws-1", "long", texts, [axis(n % DIMENSION) for n in range(250)])
    )
    index.replace_item_chunks("ws-1", "long", [])

    assert [(r.path, len(r.body) if r.path == "/_bulk" else None) for r in state.requests] == [
        ("/_bulk", 200),
        ("/_bulk", 200),
        ("/_bulk", 100),
        ("/chunks/_delete_by_query", None),
        ("/chunks/_delete_by_query", None),
    ]
    assert index.count("ws-1") == 0


def test_serverless_replaces_by_generation_lookup_and_bulk_delete() -> None:
    state = WireState(serverless=True)
    index = wire_index(state)
    index.ensure_index()
    index.replace_item_chunks(
        "ws-1", "item-1", chunks("ws-1", "item-1", ["A.", "B.", "C."], [axis(0), axis(1), axis(2)])
    )
    old_ids = set(state.documents[INDEX])
    state.requests.clear()

    index.replace_item_chunks("ws-1", "item-1", chunks("ws-1", "item-1", ["A2."], [axis(0)]))

    write, lookup, delete = state.requests
    generation = write.body[1]["generation"]
    assert write.body == [
        {"index": {"_index": "chunks"}},
        _document("item-1", 0, "A2.", axis(0), total_chunks=1, generation=generation),
    ]
    assert (lookup.path, lookup.params) == ("/chunks/_search", {})
    assert lookup.body == {
        "size": 10_000,
        "_source": False,
        "track_total_hits": True,
        "query": {
            "bool": {
                "filter": [{"term": {"workspaceId": "ws-1"}}, {"term": {"itemId": "item-1"}}],
                "must_not": [{"term": {"generation": generation}}],
            }
        },
    }
    assert {line["delete"]["_id"] for line in delete.body} == old_ids
    assert all(
        line == {"delete": {"_index": "chunks", "_id": line["delete"]["_id"]}}
        for line in delete.body
    )
    assert index.count("ws-1") == 1


def test_search_filters_inside_knn_and_on_the_keyword_query() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    index.ensure_index()
    state.requests.clear()

    index.search("ws-1", "renewal date", [0, 0, 2, 0, 0, 0, 0, 0], k=5)

    knn, keyword = state.requests
    fields = ["workspaceId", "itemId", "title", "text", "chunkIndex"]
    assert (knn.method, knn.path) == ("POST", "/chunks/_search")
    assert knn.body == {
        "size": 20,
        "_source": fields,
        "query": {
            "knn": {
                "vector": {"vector": axis(2), "k": 20, "filter": {"term": {"workspaceId": "ws-1"}}}
            }
        },
    }
    assert keyword.body == {
        "size": 20,
        "_source": fields,
        "query": {
            "bool": {
                "must": [{"multi_match": {"query": "renewal date", "fields": ["title^2", "text"]}}],
                "filter": [{"term": {"workspaceId": "ws-1"}}],
            }
        },
    }


def test_hits_of_another_workspace_are_dropped_even_if_the_cluster_returns_them() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    index.ensure_index()
    index.replace_item_chunks("ws-a", "doc", chunks("ws-a", "doc", ["Ours."], [axis(3)]))
    index.replace_item_chunks("ws-b", "doc", chunks("ws-b", "doc", ["Secret of b."], [axis(0)]))
    state.ignore_filters = True

    hits = index.search("ws-a", "secret", axis(0))

    assert [hit.chunk for hit in hits] == ["Ours."]


def test_a_throttled_bulk_item_is_retried_alone() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    index.ensure_index()
    rejected = {
        "type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation",
    }
    state.item_failures[("item-1", 1)] = [(429, rejected)]
    state.requests.clear()

    index.replace_item_chunks(
        "ws-1", "item-1", chunks("ws-1", "item-1", ["A.", "B.", "C."], [axis(0), axis(1), axis(2)])
    )

    first, retry = state.sent("POST", "/_bulk")
    assert len(first.body) == 6
    assert retry.body[0] == {"index": {"_index": "chunks", "_id": "ws-1:item-1:1"}}
    assert len(retry.body) == 2
    assert index.count("ws-1") == 3


def test_a_bulk_item_throttled_on_every_retry_raises_naming_it() -> None:
    state = WireState(serverless=False)
    index = wire_index(state, throttle_retries=2)
    index.ensure_index()
    rejected = {"type": "es_rejected_execution_exception", "reason": "queue full"}
    state.item_failures[("item-1", 0)] = [(429, rejected)] * 3

    with pytest.raises(VectorIndexError, match=r"still throttled after 2 retries: ws-1:item-1:0$"):
        index.replace_item_chunks("ws-1", "item-1", chunks("ws-1", "item-1", ["A."], [axis(0)]))

    assert len(state.sent("POST", "/_bulk")) == 3


def test_a_rejected_document_raises_an_error_naming_it() -> None:
    state = WireState(serverless=False)
    index = wire_index(state)
    index.ensure_index()
    state.item_failures[("item-1", 1)] = [
        (
            400,
            {
                "type": "mapper_parsing_exception",
                "reason": "failed to parse field [vector] of type [knn_vector]",
            },
        )
    ]

    with pytest.raises(VectorIndexError) as raised:
        index.replace_item_chunks(
            "ws-1", "item-1", chunks("ws-1", "item-1", ["A.", "B."], [axis(0), axis(1)])
        )

    assert "ws-1:item-1:1 (400 mapper_parsing_exception: failed to parse field [vector]" in str(
        raised.value
    )
    assert "ws-1:item-1:0" not in str(raised.value)
    assert state.sent("POST", "/_delete_by_query") == []


def test_a_throttled_request_is_retried_then_gives_up() -> None:
    state = WireState(serverless=False)
    index = wire_index(state, throttle_retries=2)
    index.ensure_index()
    too_many = {
        "error": {"type": "too_many_requests", "reason": "Request throttled"},
        "status": 429,
    }
    state.scripted_answers.append((429, too_many))

    index.replace_item_chunks("ws-1", "item-1", chunks("ws-1", "item-1", ["A."], [axis(0)]))

    assert len(state.sent("POST", "/_bulk")) == 2
    assert index.count("ws-1") == 1

    state.scripted_answers.extend([(429, too_many)] * 3)
    with pytest.raises(TransportError) as raised:
        index.count("ws-1")
    assert raised.value.status_code == 429


def test_serverless_delete_item_looks_up_ids_and_bulk_deletes() -> None:
    state = WireState(serverless=True)
    index = wire_index(state)
    index.ensure_index()
    index.replace_item_chunks(
        "ws-1", "item-1", chunks("ws-1", "item-1", ["A.", "B."], [axis(0), axis(1)])
    )
    state.requests.clear()

    index.delete_item("ws-1", "item-1")

    lookup, delete = state.requests
    assert lookup.body["query"] == {
        "bool": {"filter": [{"term": {"workspaceId": "ws-1"}}, {"term": {"itemId": "item-1"}}]}
    }
    assert len(delete.body) == 2
    assert index.count("ws-1") == 0


# --------------------------------------------------------------------------- the factory


def test_get_vector_index_builds_the_configured_backend_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VECTOR_BACKEND", "local")
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path))

    local = get_vector_index(DIMENSION)

    assert isinstance(local, LocalVectorIndex)
    assert get_vector_index(DIMENSION) is local
    assert (tmp_path / "vectors.sqlite3").exists()


def test_get_vector_index_builds_opensearch_without_contacting_it(monkeypatch) -> None:
    monkeypatch.setenv("VECTOR_BACKEND", "opensearch")
    monkeypatch.setenv("OPENSEARCH_ENDPOINT", "https://search-crm.us-east-1.es.amazonaws.com")
    monkeypatch.setenv("OPENSEARCH_SERVICE", "aoss")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    index = get_vector_index(DIMENSION)

    assert isinstance(index, OpenSearchVectorIndex)
    assert get_vector_index(DIMENSION) is index
    connection = index._client.transport.get_connection()
    assert isinstance(connection, RequestsHttpConnection)
    assert connection.host == "https://search-crm.us-east-1.es.amazonaws.com:443"
    assert connection.session.auth.service == "aoss"


def test_opensearch_client_accepts_only_the_two_signing_services() -> None:
    with pytest.raises(ValueError, match="'es' or 'aoss'"):
        opensearch_client("https://example.test", "us-east-1", "opensearch")


@pytest.mark.parametrize("backend", ["", "pgvector", "LOCAL"])
def test_get_vector_index_rejects_an_unknown_backend(backend, monkeypatch) -> None:
    monkeypatch.setenv("VECTOR_BACKEND", backend)

    with pytest.raises(ValueError, match="VECTOR_BACKEND must be 'opensearch' or 'local'"):
        get_vector_index(DIMENSION)


@pytest.mark.parametrize("engine", ["fts5", "python"])
def test_local_keyword_leg_stems_and_skips_question_words(engine, tmp_path, monkeypatch):
    """A question's helper words do not rank a chunk; "cost" finds "costs", and that keyword
    match outranks a chunk only nearer on the vector leg."""
    if engine == "python":
        monkeypatch.setattr(sqlite_backend, "fts5_available", lambda connection: False)
    index = LocalVectorIndex(tmp_path / "vectors.sqlite3", DIMENSION)
    assert index.keyword_engine == engine
    documents = {
        "support": ("How does support work? It answers how-to questions and does it fast.", 0),
        "pricing": ("The starter plan costs 900 dollars a month per robot.", 1),
    }
    for item_id, (text, tilt) in documents.items():
        vector = axis(0, tilt=tilt) if tilt else axis(0)
        index.replace_item_chunks(
            "ws-1",
            item_id,
            [ChunkRecord("ws-1", item_id, item_id, text, 0, 1, "text", None, None, vector)],
        )
    hits = index.search("ws-1", "how much does it cost", axis(0), k=2)
    assert [hit.item_id for hit in hits] == ["pricing", "support"]
    assert index.search("ws-1", "how does it", axis(0), k=2)[0].item_id == "support"
    index.close()
