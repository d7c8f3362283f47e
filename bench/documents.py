"""Document indexing and search figures on the local default (MiniLM in numpy, SQLite index).

(a) chunk_text's rate on multi-paragraph text; (b) documents per second end to end:
index-document runs through the queue, and one bulk-index-documents run through the state
machine; (c) embedding calls, vector-index calls and AWS requests per document, and the
HTTP requests the OpenSearch adapter would send for the same documents (over the
recording connection of tests/unit/test_vector_index.py); (d) search_knowledge latency
at --chunks chunks in one workspace, and in a two-workspace index.

The embedder's matrix products run on numpy's BLAS, which uses every core unless
OPENBLAS_NUM_THREADS says otherwise; on a machine busy with other work, one thread can be
much faster (the setting in force is printed).

Run: python bench/documents.py [--documents 40] [--chunks 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from aws_requests import by_service, counting_aws_requests, uncounted  # noqa: E402
from test_vector_index import WireState, wire_client  # noqa: E402

from crmjobs import client, config  # noqa: E402
from crmjobs.adapters.embeddings import get_embedder  # noqa: E402
from crmjobs.adapters.vector_index import ChunkRecord, get_vector_index  # noqa: E402
from crmjobs.adapters.vector_index.opensearch import OpenSearchVectorIndex  # noqa: E402
from crmjobs.domain.chunking import chunk_text  # noqa: E402
from crmjobs.models import KnowledgeItem, Workspace  # noqa: E402
from crmjobs.services.documents import search_knowledge  # noqa: E402
from crmjobs_local.stack import LocalRuntime  # noqa: E402

QUEUE_WORKSPACE = "ws-bench-docs"
BULK_WORKSPACE = "ws-bench-bulk"
SEARCH_WORKSPACE = "ws-search-a"
OTHER_WORKSPACE = "ws-search-b"
INDEX_METHODS = ("ensure_index", "replace_item_chunks", "delete_item", "search", "count")
QUERIES = 50
CHUNKS_PER_SEARCH_ITEM = 20
MAX_SENTENCES = 400
BULK_TIMEOUT_S = 900

# --------------------------------------------------------------------------- text

_SUBJECTS = (
    "The starter plan",
    "Every enterprise contract",
    "Our onboarding team",
    "The mobile app",
    "Each warehouse robot",
    "The billing service",
    "Customer support",
    "The security team",
    "The integration API",
    "A quarterly business review",
    "The data export",
    "Single sign-on",
)
_VERBS = (
    "includes",
    "requires",
    "covers",
    "supports",
    "replaces",
    "schedules",
    "encrypts",
    "reports on",
    "depends on",
    "is limited to",
)
_OBJECTS = (
    "weekly maintenance visits",
    "a dedicated success manager",
    "usage-based pricing for extra seats",
    "audit logs kept for seven years",
    "two-factor authentication for every administrator",
    "volume discounts above fifty robots",
    "a response within four business hours",
    "nightly backups to a second region",
    "invoices in euros, dollars or pounds",
    "webhooks for every pipeline change",
    "custom fields on prospects and contacts",
    "SOC 2 Type II controls",
    "TLS 1.3 in transit and AES-256 at rest",
    "a sandbox workspace for testing imports",
)
_QUALIFIERS = (
    "",
    "",
    " when the contract renews",
    " for accounts in the European Union",
    ", unless the customer opts out in writing",
    " within two business days of a request",
    " from the second year onwards",
    " on the enterprise tier only",
    " as described in the service level agreement",
    " (see the appendix for the exact figures)",
)
_QUESTIONS = (
    "Which plan includes",
    "Who is responsible for",
    "Do we offer",
    "How quickly do we provide",
    "What does the contract say about",
)


def sentence(rng: random.Random) -> str:
    """One sentence; now and then two clauses, a quoted name or a question."""
    text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    text += rng.choice(_QUALIFIERS)
    roll = rng.random()
    if roll < 0.2:
        text += f"; {rng.choice(_SUBJECTS).lower()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    elif roll < 0.3:
        text += ', which the team calls "the renewal check"'
    return text + ("?" if roll > 0.95 else ".")


def render(paragraphs: list[list[str]]) -> str:
    return "\n\n".join(" ".join(paragraph) for paragraph in paragraphs if paragraph)


def document_text(rng: random.Random, sentences: int) -> str:
    """Paragraphs of 2-6 sentences."""
    paragraphs: list[list[str]] = [[]]
    limit = rng.randint(2, 6)
    for _ in range(sentences):
        paragraphs[-1].append(sentence(rng))
        if len(paragraphs[-1]) >= limit:
            paragraphs.append([])
            limit = rng.randint(2, 6)
    return render(paragraphs)


def document_of_chunks(rng: random.Random, chunk_count: int) -> str:
    """The longest document, sentence by sentence, that chunk_text cuts into chunk_count."""
    paragraphs: list[list[str]] = [[]]
    limit = rng.randint(2, 6)
    fitting = ""
    for _ in range(MAX_SENTENCES):
        paragraphs[-1].append(sentence(rng))
        text = render(paragraphs)
        if len(chunk_text(text)) > chunk_count:
            break
        fitting = text
        if len(paragraphs[-1]) >= limit:
            paragraphs.append([])
            limit = rng.randint(2, 6)
    return fitting


def small_documents(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [document_of_chunks(rng, rng.randint(3, 6)) for _ in range(count)]


def queries(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(_QUESTIONS)} {rng.choice(_OBJECTS)}?" for _ in range(count)]


# --------------------------------------------------------------------------- counting


class CallCounter:
    """Calls, seconds and arguments per wrapped method; Step Functions runs the bulk
    steps on moto's threads, hence the lock."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.arguments: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._lock = threading.Lock()

    @contextmanager
    def wrapping(self, target: Any, label: str, names: Sequence[str]) -> Iterator[None]:
        """Shadow the instance's methods with counting proxies; restore them on exit."""
        saved = {name: vars(target).get(name) for name in names}
        for name in names:
            setattr(target, name, self._proxy(f"{label}.{name}", getattr(target, name)))
        try:
            yield
        finally:
            for name, previous in saved.items():
                if previous is None:
                    delattr(target, name)
                else:
                    setattr(target, name, previous)

    def _proxy(self, key: str, method: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                with self._lock:
                    self.calls[key] += 1
                    self.seconds[key] += time.perf_counter() - started
                    self.arguments[key].append(args)

        return counted


@contextmanager
def counting_indexing() -> Iterator[tuple[CallCounter, Counter[str]]]:
    """Count the process's embedder and vector index calls, and every AWS request."""
    embedder = get_embedder()
    index = get_vector_index(embedder.dimension)
    counter = CallCounter()
    with (
        counter.wrapping(embedder, "embedder", ["embed"]),
        counter.wrapping(index, "index", INDEX_METHODS),
        counting_aws_requests() as requests,
    ):
        yield counter, requests


# --------------------------------------------------------------------------- (a) chunking


def measure_chunking(chunks: int, repeats: int = 3) -> None:
    rng = random.Random(3)
    corpus, total = [], 0
    while total < chunks:
        text = document_text(rng, rng.randint(10, 80))
        corpus.append(text)
        total += len(chunk_text(text))
    characters = sum(len(text) for text in corpus)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for text in corpus:
            chunk_text(text)
        rates.append(time.perf_counter() - started)
    seconds = statistics.median(rates)
    print("\n(a) chunk_text on multi-paragraph text")
    print(
        f"  {len(corpus)} documents, {characters:,} characters, {total:,} chunks"
        f" ({characters / total:.0f} characters per chunk)"
    )
    print(
        f"  {total / seconds:,.0f} chunks/s, {characters / seconds / 1e6:.2f} M characters/s"
        f" (median of {repeats} passes, {seconds * 1000:.0f} ms a pass)"
    )


# --------------------------------------------------------------------------- (b), (c) indexing


def seed_items(workspace_id: str, texts: list[str]) -> list[str]:
    Workspace(id=workspace_id, name="Bench", subscription_tier="enterprise").save()
    ids = [f"doc-{n:04d}" for n in range(len(texts))]
    with KnowledgeItem.batch_write() as batch:
        for item_id, text in zip(ids, texts, strict=True):
            batch.save(
                KnowledgeItem(
                    workspace_id=workspace_id,
                    id=item_id,
                    title=f"Handbook {item_id}",
                    content=text,
                    mime_type="text/plain",
                    file_name=f"{item_id}.txt",
                )
            )
    return ids


def index_through_queue(stack: LocalRuntime, item_ids: list[str]) -> float:
    """Trigger index-document per item, then poll its queue until every record ran."""
    source = stack.source_for_task("index-document")
    started = time.perf_counter()
    runs = [
        client.trigger("index-document", {"workspaceId": QUEUE_WORKSPACE, "itemId": item_id})
        for item_id in item_ids
    ]
    handled = 0
    for _ in range(len(item_ids) + 5):
        outcome = source.poll_once()
        if outcome is None:
            break
        handled += len(outcome.event["Records"])
        if handled >= len(item_ids):
            break
    elapsed = time.perf_counter() - started
    for run in runs:
        done = client.retrieve(run.id)
        if done.status != "COMPLETED" or done.output["status"] != "indexed":
            raise SystemExit(f"index-document {run.id}: {done.status} {done.error}")
    return elapsed


def index_through_state_machine(stack: LocalRuntime, count: int) -> tuple[float, dict]:
    """The task's handler starts the state machine, whose last step finishes the run."""
    run = client.trigger("bulk-index-documents", {"workspaceId": BULK_WORKSPACE})
    started = time.perf_counter()
    outcome = stack.source_for_task("bulk-index-documents").poll_once()
    with uncounted():
        done = client.wait(run.id, timeout=BULK_TIMEOUT_S, poll=0.1)
    elapsed = time.perf_counter() - started
    if done.status != "COMPLETED" or done.output["indexed"] != count:
        reason = outcome.failure_reason if outcome else "no message received"
        raise SystemExit(f"bulk-index-documents {done.status} ({reason}): {done.error}")
    return elapsed, done.output


def report_indexing(
    label: str, documents: int, elapsed: float, counter: CallCounter, requests: Counter[str]
) -> None:
    embed = "embedder.embed"
    texts = sum(len(args[0]) for args in counter.arguments[embed])
    print(f"\n{label}")
    print(f"  {documents} documents, {texts} chunks embedded, wall time {elapsed:.1f} s")
    print(f"  {documents / elapsed:.2f} documents/s, {texts / elapsed:.1f} chunks/s")
    print(
        f"  embedding: {counter.calls[embed] / documents:.2f} embed calls per document"
        f" ({texts / documents:.2f} texts per document, so as many Bedrock InvokeModel"
        f" requests); {counter.seconds[embed]:.1f} s inside embed, summed over concurrent"
        f" calls ({counter.seconds[embed] / elapsed:.0%} of the wall time)"
    )
    calls = ", ".join(
        f"{name} {counter.calls[f'index.{name}'] / documents:.2f}"
        for name in INDEX_METHODS
        if counter.calls[f"index.{name}"]
    )
    index_seconds = sum(counter.seconds[f"index.{name}"] for name in INDEX_METHODS)
    print(f"  vector index calls per document: {calls} ({index_seconds:.1f} s in all)")
    services = ", ".join(
        f"{name} {count / documents:.2f} ({count})"
        for name, count in sorted(by_service(requests).items())
    )
    print(f"  AWS requests per document (in all) (moto): {services}")


def recorded_replacements(counter: CallCounter) -> list[tuple[str, str, list[ChunkRecord]]]:
    return [tuple(args) for args in counter.arguments["index.replace_item_chunks"]]


def request_label(method: str, path: str) -> str:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{method} {last if last.startswith('_') else '/<index>'}"


def opensearch_requests(
    replacements: list[tuple[str, str, list[ChunkRecord]]], serverless: bool
) -> None:
    """What OpenSearchVectorIndex sends for the recorded documents, phase by phase."""
    documents = len(replacements)
    workspace_id, _, first_chunks = replacements[0]
    wire = WireState(serverless=serverless)
    index = OpenSearchVectorIndex(
        wire_client(wire), "knowledge-chunks", len(first_chunks[0].vector), serverless=serverless
    )

    def index_all() -> None:
        for args in replacements:
            index.replace_item_chunks(*args)

    def delete_all() -> None:
        for workspace, item_id, _ in replacements:
            index.delete_item(workspace, item_id)

    phases = [
        ("ensure_index, once per process", 1, index.ensure_index),
        ("first index, per document", documents, index_all),
        ("re-index, per document", documents, index_all),
        (
            "search, per query",
            1,
            lambda: index.search(workspace_id, "volume discounts", first_chunks[0].vector),
        ),
        ("delete_item, per document", documents, delete_all),
    ]
    print(f"  {'Serverless collection (aoss)' if serverless else 'managed domain (es)'}:")
    for label, per, run_phase in phases:
        before = len(wire.requests)
        run_phase()
        sent = Counter(request_label(r.method, r.path) for r in wire.requests[before:])
        detail = ", ".join(f"{name} {count / per:.2f}" for name, count in sorted(sent.items()))
        print(f"    {label}: {sum(sent.values()) / per:.2f} ({detail})")


def measure_indexing(documents: int) -> None:
    print(f"\n(b) indexing end to end on the local default, {documents} documents of 3-6 chunks")
    with (
        tempfile.TemporaryDirectory() as data,
        LocalRuntime(data_dir=Path(data), in_process=True) as stack,
        # The handlers' CloudWatch metrics (EMF) still print, to nowhere instead of the report.
        open(os.devnull, "w") as discard,
    ):
        queue_ids = seed_items(QUEUE_WORKSPACE, small_documents(documents, seed=5))
        seed_items(BULK_WORKSPACE, small_documents(documents, seed=6))
        get_embedder().embed(["load the model before timing"])
        with counting_indexing() as (counter, requests), redirect_stdout(discard):
            elapsed = index_through_queue(stack, queue_ids)
        report_indexing(
            "index-document through its queue (trigger, poll, handler, ledger)",
            documents,
            elapsed,
            counter,
            requests,
        )
        replacements = recorded_replacements(counter)
        with counting_indexing() as (counter, requests), redirect_stdout(discard):
            elapsed, output = index_through_state_machine(stack, documents)
        report_indexing(
            f"bulk-index-documents through the state machine (output {output})",
            documents,
            elapsed,
            counter,
            requests,
        )
    print("\n(c) OpenSearch adapter, HTTP requests for the same documents (recording connection)")
    for serverless in (False, True):
        opensearch_requests(replacements, serverless)


# --------------------------------------------------------------------------- (d) search


def fill_workspace(
    index: Any, workspace_id: str, texts: list[str], vectors: list, total: int
) -> None:
    """`total` chunks in items of CHUNKS_PER_SEARCH_ITEM, cycling through the texts."""
    for start in range(0, total, CHUNKS_PER_SEARCH_ITEM):
        item_id = f"item-{start // CHUNKS_PER_SEARCH_ITEM:05d}"
        size = min(CHUNKS_PER_SEARCH_ITEM, total - start)
        index.replace_item_chunks(
            workspace_id,
            item_id,
            [
                ChunkRecord(
                    workspace_id=workspace_id,
                    item_id=item_id,
                    title=f"Handbook {item_id}",
                    text=texts[(start + position) % len(texts)],
                    chunk_index=position,
                    total_chunks=size,
                    type="document",
                    mime_type="text/plain",
                    file_name=None,
                    vector=vectors[(start + position) % len(texts)],
                )
                for position in range(size)
            ],
        )


def latencies(workspace_id: str, questions: list[str], vectors: list, index: Any) -> None:
    """search_knowledge (embeds the query, then searches) and the index's search alone."""
    full, alone = [], []
    for question, vector in zip(questions, vectors, strict=True):
        started = time.perf_counter()
        hits = search_knowledge(workspace_id, question, k=5)
        full.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        index.search(workspace_id, question, vector, k=5)
        alone.append((time.perf_counter() - started) * 1000)
        if len(hits) != 5:
            raise SystemExit(f"search of {workspace_id} returned {len(hits)} hits")
    for label, samples in (("search_knowledge", full), ("index.search alone", alone)):
        p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
        print(
            f"    {label}: median {statistics.median(samples):.1f} ms,"
            f" p95 {p95:.1f} ms over {len(samples)} queries"
        )


def measure_search(chunks: int, distinct: int) -> None:
    with (
        tempfile.TemporaryDirectory() as data,
        config.function_environment(
            {"EMBEDDINGS_BACKEND": "local", "VECTOR_BACKEND": "local", "LOCAL_DATA_DIR": data}
        ),
    ):
        embedder = get_embedder()
        index = get_vector_index(embedder.dimension)
        rng = random.Random(9)
        texts: list[str] = []
        while len(texts) < distinct:
            texts.extend(dict.fromkeys(chunk_text(document_text(rng, 40))))
        texts = list(dict.fromkeys(texts))[:distinct]
        started = time.perf_counter()
        vectors = embedder.embed(texts)
        embedding_seconds = time.perf_counter() - started
        print(
            f"\n(d) hybrid search, local backend ({index.keyword_engine} keyword leg):"
            f" {chunks:,} chunks per workspace, real MiniLM vectors of {distinct} distinct"
            f" chunk texts reused ({embedding_seconds:.1f} s to embed them)"
        )
        started = time.perf_counter()
        fill_workspace(index, SEARCH_WORKSPACE, texts, vectors, chunks)
        print(f"  filled {SEARCH_WORKSPACE} in {time.perf_counter() - started:.1f} s")
        questions = queries(QUERIES)
        query_vectors = embedder.embed(questions)
        started = time.perf_counter()
        search_knowledge(SEARCH_WORKSPACE, questions[0])
        print(
            f"  first search (loads the workspace's vectors):"
            f" {(time.perf_counter() - started) * 1000:.0f} ms"
        )
        print(f"  one workspace of {chunks:,} chunks:")
        latencies(SEARCH_WORKSPACE, questions, query_vectors, index)
        fill_workspace(index, OTHER_WORKSPACE, texts, vectors, chunks)
        print(f"  {SEARCH_WORKSPACE} filtered out of 2 workspaces ({2 * chunks:,} chunks):")
        latencies(SEARCH_WORKSPACE, questions, query_vectors, index)
        index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument(
        "--distinct-texts",
        type=int,
        default=256,
        help="chunk texts embedded for the search index; the rest reuse them",
    )
    args = parser.parse_args()
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset, so one per core")
    print(f"cores: {os.cpu_count()}, OPENBLAS_NUM_THREADS: {threads}")
    measure_chunking(args.chunks)
    measure_indexing(args.documents)
    measure_search(args.chunks, args.distinct_texts)


if __name__ == "__main__":
    main()
