"""Qdrant access shared by the API and ingestion: server by URL or local mode by path."""

from __future__ import annotations

import sqlite3
import warnings

from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from app.embeddings import embedding_dimension
from app.lexical import SPARSE_VECTOR
from app.settings import Settings

# Payload layout of langchain-qdrant, so ingestion writes what the retriever reads.
CONTENT_KEY = "page_content"
METADATA_KEY = "metadata"


class CollectionMismatch(RuntimeError):
    """The collection exists with another vector size (embedding model changed)."""


def make_client(settings: Settings) -> QdrantClient:
    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None)
    if str(settings.qdrant_path) == ":memory:":
        return QdrantClient(location=":memory:")
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_path))


def write_ahead_local_storage(client: QdrantClient) -> None:
    """Qdrant local mode keeps each collection's points in SQLite and commits every point
    on its own. In SQLite's default journal each commit waits for the disk (~0.8 ms: over
    a third of ingestion's own time, outside the embedding, for 2,000 chunks). With
    write-ahead logging and synchronous=NORMAL a commit does not wait, and the file stays
    consistent after a crash: at most the last points are lost, and the next ingestion
    run writes them again (it compares the indexed chunk ids with the documents').

    qdrant-client has no setting for it, so this reaches into its local mode; a version
    that stores points differently, a Qdrant server and in-memory mode are left as they
    are."""
    local = getattr(client, "_client", None)
    for collection in dict(getattr(local, "collections", None) or {}).values():
        storage = getattr(getattr(collection, "storage", None), "storage", None)
        if not isinstance(storage, sqlite3.Connection):
            continue
        try:
            # SQLite answers the mode it is in: not "wal" where the file system cannot
            # share memory between processes (some network mounts).
            mode = storage.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() == "wal":
                storage.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            pass  # e.g. inside a transaction: slower commits, nothing lost


def has_lexical(client: QdrantClient, name: str) -> bool:
    """Whether the collection has the BM25 sparse vector (collections created before
    hybrid retrieval do not: they are searched dense-only until re-created)."""
    sparse = client.get_collection(name).config.params.sparse_vectors or {}
    return SPARSE_VECTOR in sparse


def ensure_collection(client: QdrantClient, name: str, dimension: int) -> bool:
    """Creates the collection (dense vector plus the BM25 sparse vector with Qdrant's IDF
    modifier) unless it exists; returns whether it has the sparse vector."""
    if client.collection_exists(name):
        vectors = client.get_collection(name).config.params.vectors
        size = vectors.size if isinstance(vectors, qm.VectorParams) else None
        if size is not None and size != dimension:
            raise CollectionMismatch(
                f"collection {name!r} holds {size}-dimensional vectors but the embedding "
                f"model gives {dimension}; re-create the collection or use the old model"
            )
        return has_lexical(client, name)
    client.create_collection(
        name,
        vectors_config=qm.VectorParams(size=dimension, distance=qm.Distance.COSINE),
        sparse_vectors_config={SPARSE_VECTOR: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
    )
    # Ingestion filters by source; local mode ignores payload indexes (and warns).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        client.create_payload_index(
            name, f"{METADATA_KEY}.source", field_schema=qm.PayloadSchemaType.KEYWORD
        )
    return True


def make_vector_store(
    client: QdrantClient, settings: Settings, embeddings: Embeddings
) -> QdrantVectorStore:
    ensure_collection(client, settings.collection_name, embedding_dimension(embeddings))
    return QdrantVectorStore(
        client=client,
        collection_name=settings.collection_name,
        embedding=embeddings,
        content_payload_key=CONTENT_KEY,
        metadata_payload_key=METADATA_KEY,
    )
