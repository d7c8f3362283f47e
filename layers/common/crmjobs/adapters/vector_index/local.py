"""The vector index in one SQLite file, for the embedded local runtime: exact cosine k-NN
with numpy (the ``local`` extra, imported when first used) and BM25 keyword search
(SQLite FTS5, or a BM25 computed in Python over a token table when the interpreter's
SQLite lacks FTS5)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmjobs.adapters.vector_index.interface import (
    ChunkRecord,
    SearchHit,
    VectorIndexError,
    check_k,
    check_replacement,
    chunk_id,
)
from crmjobs.domain.search import (
    TITLE_BOOST,
    bm25_ranking,
    candidates_per_leg,
    query_terms,
    reciprocal_rank_fusion,
    stem,
    unit_vector,
    weighted_term_frequencies,
    word_tokens,
)


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

        check_replacement(workspace_id, item_id, chunks, self._dimension)
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
                        len(word_tokens(chunk.title)) + len(word_tokens(chunk.text)),
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
        check_k(k)
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
        """BM25 (`crmjobs.domain.search.bm25_ranking`) of the terms' Porter stems over the
        workspace's token table, which holds stems (as FTS5's porter tokenizer does)."""
        stems = list(dict.fromkeys(stem(term) for term in terms))
        document_count, average_length = self._connection.execute(
            "SELECT count(*), avg(token_count) FROM chunks WHERE workspace_id = ?",
            (workspace_id,),
        ).fetchone()
        if not average_length:
            return []
        placeholders = ",".join("?" * len(stems))
        postings = self._connection.execute(
            "SELECT chunk_terms.term, chunk_terms.chunk_id, chunk_terms.weighted_frequency,"
            " chunks.token_count FROM chunk_terms JOIN chunks USING (chunk_id)"
            f" WHERE chunk_terms.workspace_id = ? AND chunk_terms.term IN ({placeholders})",
            [workspace_id, *stems],
        ).fetchall()
        return bm25_ranking(postings, document_count, average_length, size)


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
    """Token-table rows of one chunk."""
    frequencies = weighted_term_frequencies(title, text)
    return [(workspace_id, term, doc_id, frequency) for term, frequency in frequencies.items()]
