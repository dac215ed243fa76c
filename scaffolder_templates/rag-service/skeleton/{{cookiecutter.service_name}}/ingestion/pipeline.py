"""Sync the sources into Qdrant: only new or changed chunks are embedded and written,
chunks of changed or removed documents are deleted, so an unchanged re-run writes
nothing. Documents that fail to load are reported and their indexed chunks kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.embeddings import Embeddings
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.lexical import SPARSE_VECTOR, LexicalEncoder
from app.vectorstore import (
    CONTENT_KEY,
    METADATA_KEY,
    ensure_collection,
    write_ahead_local_storage,
)
from ingestion.boilerplate import MIN_PAGES, BoilerplateProfile
from ingestion.chunking import Chunk, Chunker
from ingestion.loaders import LoadProblem
from ingestion.sources import RawDocument, SourceItem, SourceProblem, shard_of

SCROLL_PAGE = 1024
# Pages per site read to learn its navigation blocks (spread over the site).
BOILERPLATE_SAMPLE = 40


@dataclass
class Problem:
    source: str
    message: str


@dataclass
class IngestionReport:
    shard_index: int
    shard_count: int
    documents_seen: int = 0
    documents_new: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_removed: int = 0
    documents_failed: int = 0
    chunks_added: int = 0
    chunks_updated: int = 0
    chunks_deleted: int = 0
    chunks_unchanged: int = 0
    embedding_seconds: float = 0.0
    seconds: float = 0.0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def points_written(self) -> int:
        return self.chunks_added + self.chunks_updated


def existing_chunks(
    client: QdrantClient, collection: str, shard_index: int, shard_count: int
) -> dict[str, dict[int, str]]:
    """source -> {chunk_index: point id} for the sources of this shard."""
    found: dict[str, dict[int, str]] = {}
    offset = None
    while True:
        points, offset = client.scroll(
            collection,
            limit=SCROLL_PAGE,
            offset=offset,
            with_payload=[f"{METADATA_KEY}.source", f"{METADATA_KEY}.chunk_index"],
            with_vectors=False,
        )
        for point in points:
            meta = (point.payload or {}).get(METADATA_KEY, {})
            source = meta.get("source")
            if source is None or shard_of(source, shard_count) != shard_index:
                continue
            found.setdefault(source, {})[int(meta.get("chunk_index", 0))] = str(point.id)
        if offset is None:
            return found


def learn_boilerplate(
    items: list[SourceItem],
) -> tuple[dict[str, BoilerplateProfile], dict[str, RawDocument]]:
    """Each site's repeated navigation, from up to BOILERPLATE_SAMPLE of its HTML pages;
    also the pages read for it, so they are not read (or fetched) twice."""
    by_site: dict[str, list[SourceItem]] = {}
    for item in items:
        if item.is_html:
            by_site.setdefault(item.site, []).append(item)
    profiles: dict[str, BoilerplateProfile] = {}
    read: dict[str, RawDocument] = {}
    for site, pages in by_site.items():
        if len(pages) < MIN_PAGES:
            continue
        step = max(1, len(pages) // BOILERPLATE_SAMPLE)
        sample: list[bytes] = []
        for item in pages[::step][:BOILERPLATE_SAMPLE]:
            try:
                raw = item.read()
            except LoadProblem:
                continue  # reported when the page itself is loaded
            read[item.source] = raw
            if item.source_type != "url" or "html" in raw.content_type:
                sample.append(raw.data)  # a URL without a suffix may serve a PDF
        profiles[site] = BoilerplateProfile.learn(sample)
    return profiles, read


def _batches(items: list[Chunk], size: int) -> Iterable[list[Chunk]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ingest(
    items: list[SourceItem],
    source_problems: list[SourceProblem],
    *,
    client: QdrantClient,
    collection: str,
    embeddings: Embeddings,
    dimension: int,
    chunker: Chunker,
    batch_size: int = 64,
    shard_index: int = 0,
    shard_count: int = 1,
    console: Console | None = None,
) -> IngestionReport:
    started = time.perf_counter()
    console = console or Console(stderr=True)
    report = IngestionReport(shard_index, shard_count)
    report.errors.extend(Problem(p.source, p.message) for p in source_problems)
    lexical = ensure_collection(client, collection, dimension)
    write_ahead_local_storage(client)
    if not lexical:
        report.warnings.append(
            Problem(
                collection,
                "the collection has no BM25 sparse vector (created before hybrid retrieval): "
                "it is searched dense-only; delete it and re-ingest for hybrid ranking",
            )
        )
    encoder = LexicalEncoder(chunker.chunk_size) if lexical else None
    indexed = existing_chunks(client, collection, shard_index, shard_count)
    mine = [item for item in items if shard_of(item.source, shard_count) == shard_index]
    profiles, already_read = learn_boilerplate(mine)

    to_write: list[Chunk] = []
    to_delete: list[str] = []
    kept_sources: set[str] = set()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("loading", total=len(mine))
        for item in mine:
            progress.advance(task)
            report.documents_seen += 1
            kept_sources.add(item.source)  # failed loads keep their indexed chunks
            try:
                loaded = item.load(profiles.get(item.site), already_read.pop(item.source, None))
            except LoadProblem as exc:
                report.documents_failed += 1
                report.errors.append(Problem(item.source, str(exc)))
                continue
            report.warnings.extend(Problem(item.source, w) for w in loaded.warnings)
            chunks = chunker.split(loaded.documents, item.source_type)
            before = indexed.get(item.source, {})
            after = {c.metadata["chunk_index"]: c for c in chunks}
            if not before:
                report.documents_new += 1
            elif {i: c.id for i, c in after.items()} == before:
                report.documents_unchanged += 1
            else:
                report.documents_changed += 1
            for index, chunk in after.items():
                old = before.get(index)
                if old == chunk.id:
                    report.chunks_unchanged += 1
                    continue
                to_write.append(chunk)
                if old is None:
                    report.chunks_added += 1
                else:
                    report.chunks_updated += 1
                    to_delete.append(old)
            for index, old in before.items():
                if index not in after:
                    to_delete.append(old)
                    report.chunks_deleted += 1

        for source, points in indexed.items():
            if source not in kept_sources:
                report.documents_removed += 1
                report.chunks_deleted += len(points)
                to_delete.extend(points.values())

        # Delete first: an updated chunk's new id may differ from its old one.
        if to_delete:
            client.delete(collection, points_selector=qm.PointIdsList(points=to_delete))
        task = progress.add_task("embedding", total=len(to_write))
        for batch in _batches(to_write, batch_size):
            t0 = time.perf_counter()
            vectors = embeddings.embed_documents([c.text for c in batch])
            report.embedding_seconds += time.perf_counter() - t0
            # One Batch (columns), not a list of PointStructs: qdrant-client inspects
            # each PointStruct for objects it must embed itself (~5 ms per 64 points).
            columns: dict[str, list[Any]] = {"": vectors}
            if encoder is not None:
                columns[SPARSE_VECTOR] = [encoder.document(c.text) for c in batch]
            client.upsert(
                collection,
                points=qm.Batch(
                    ids=[c.id for c in batch],
                    vectors=columns,
                    payloads=[{CONTENT_KEY: c.text, METADATA_KEY: c.metadata} for c in batch],
                ),
            )
            progress.advance(task, len(batch))
    report.seconds = round(time.perf_counter() - started, 3)
    report.embedding_seconds = round(report.embedding_seconds, 3)
    return report
