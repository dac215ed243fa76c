"""Fixtures: Qdrant local mode in a temp folder, offline embeddings, fake chat models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from qdrant_client import QdrantClient

from app.embeddings import HashingEmbeddings
from app.main import create_app
from app.settings import REPO_ROOT, Settings
from ingestion.chunking import Chunker
from ingestion.pipeline import ingest
from ingestion.sources import SourcesConfig, enumerate_sources

ANSWER = "Send a POST request to /query with the question [1]."
USAGE = {"input_tokens": 120, "output_tokens": 14, "total_tokens": 134}


class UsageReportingFakeChatModel(GenericFakeChatModel):
    """langchain-core's fake chat model, plus token usage on a last streamed chunk, as
    vLLM and llama.cpp send it (stream_options.include_usage)."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=USAGE))


def fake_llm(text: str = ANSWER, times: int = 50) -> GenericFakeChatModel:
    """Replies `text` (streamed word by word) and reports USAGE."""
    return UsageReportingFakeChatModel(messages=iter([AIMessage(content=text)] * times))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        qdrant_url="",
        qdrant_path=tmp_path / "qdrant",
        embedding_provider="hashing",
        source_cache_dir=tmp_path / "sources-cache",
        ragportal_url="",
        ragportal_ingest_token="",
        relevance_threshold=0.2,
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the template's example corpus (examples/corpus) as docs/, free to change
    per test."""
    root = tmp_path / "corpus"
    shutil.copytree(REPO_ROOT / "examples" / "corpus", root / "docs")
    return root


@pytest.fixture
def client(settings: Settings) -> Iterator[QdrantClient]:
    qdrant = QdrantClient(path=str(settings.qdrant_path))
    yield qdrant
    qdrant.close()


def run_ingest(settings: Settings, qdrant: QdrantClient, base: Path, config: SourcesConfig, **kw):
    items, problems = enumerate_sources(
        config,
        base_dir=base,
        cache_dir=settings.source_cache_dir,
        max_bytes=kw.pop("max_bytes", settings.max_document_bytes),
    )
    return ingest(
        items,
        problems,
        client=qdrant,
        collection=settings.collection_name,
        embeddings=HashingEmbeddings(settings.embedding_dimension),
        dimension=settings.embedding_dimension,
        chunker=Chunker(settings.chunk_size, settings.chunk_overlap),
        **kw,
    )


@pytest.fixture
def indexed(settings: Settings, client: QdrantClient, corpus: Path) -> QdrantClient:
    report = run_ingest(settings, client, corpus, SourcesConfig(["docs"], [], [], []))
    assert not report.errors, report.errors
    return client


@pytest.fixture
def api(settings: Settings, indexed: QdrantClient) -> Iterator[TestClient]:
    app = create_app(settings, llm=fake_llm(), embeddings=HashingEmbeddings(), client=indexed)
    with TestClient(app) as test_client:
        yield test_client
