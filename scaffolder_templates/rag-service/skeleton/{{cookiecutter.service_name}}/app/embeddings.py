"""Embedding models chosen by settings (local sentence-transformers or an endpoint)."""

from __future__ import annotations

import hashlib
import logging
import math
import re
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from app.local_models import packaged_minilm
from app.settings import Settings

logger = logging.getLogger(__name__)
_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbeddings(Embeddings):
    """Lexical embeddings by feature hashing: offline, deterministic, no model.

    Texts sharing words get similar vectors, so retrieval behaves sensibly in unit
    tests and on machines without the real model. Not meant for production quality.
    """

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for token in _TOKEN.findall(text.lower()):
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self.dimension
            vector[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def resolve_local_model(name_or_path: str) -> str:
    """A folder path as is; all-MiniLM-L6-v2 from an offline PyPI package when installed.

    Anything else is handed to sentence-transformers by name (which downloads it once
    in environments that allow that).
    """
    if Path(name_or_path).is_dir():
        return name_or_path
    if name_or_path.rsplit("/", 1)[-1].lower() == "all-minilm-l6-v2":
        packaged = packaged_minilm()
        if packaged is not None:
            return str(packaged)
    return name_or_path


def embedding_dimension(embeddings: Embeddings) -> int:
    """The vector size the model really produces, so the Qdrant collection matches it.

    Local models report it; an OpenAI-compatible endpoint is asked with one short text
    (its size depends on the model behind it: 384 for MiniLM, 576 for SmolLM2-135M,
    1536 for text-embedding-3-small...), never assumed from settings.
    """
    if isinstance(embeddings, HashingEmbeddings | SentenceTransformerEmbeddings):
        return embeddings.dimension
    vector = embeddings.embed_query("dimension probe")
    if not vector:
        raise ValueError("the embeddings endpoint returned an empty vector")
    return len(vector)


def make_embeddings(settings: Settings, *, for_queries: bool = False) -> Embeddings:
    """The configured embeddings; `for_queries` (the API) adds the ONNX question encoder
    when QUERY_EMBEDDING_BACKEND=onnx (ingestion and evaluation keep PyTorch)."""
    if settings.embedding_provider == "hashing":
        return HashingEmbeddings(settings.embedding_dimension)
    if settings.embedding_provider == "openai":
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(
            model=settings.embedding_model,
            base_url=settings.embedding_base_url or None,
            api_key=settings.embedding_api_key,
            chunk_size=settings.embedding_batch_size,
            # vLLM/TEI endpoints take plain strings, not OpenAI's pre-tokenized input.
            check_embedding_ctx_length=False,
        )
    onnx = for_queries and settings.query_embedding_backend == "onnx"
    return SentenceTransformerEmbeddings(
        resolve_local_model(settings.embedding_model),
        settings.embedding_batch_size,
        onnx_cache_dir=settings.onnx_cache_dir if onnx else None,
        query_threads=settings.query_embedding_threads,
    )


class SentenceTransformerEmbeddings(Embeddings):
    """sentence-transformers in-process, normalized vectors for cosine distance.

    With `onnx_cache_dir`, questions (embed_query) run on an ONNX Runtime export of the
    same model (app/onnx_query.py); documents always run on PyTorch, batched.
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        *,
        onnx_cache_dir: Path | None = None,
        query_threads: int = 1,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model, device="cpu")
        self.batch_size = batch_size
        # Renamed in sentence-transformers 6 (the old name warns).
        dimension = getattr(self.model, "get_embedding_dimension", None)
        self.dimension = int((dimension or self.model.get_sentence_embedding_dimension)())
        self.query_encoder: Any = None
        if onnx_cache_dir is not None:
            self.query_encoder = _onnx_query_encoder(self.model, onnx_cache_dir, query_threads)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        if self.query_encoder is not None:
            return self.query_encoder.embed([text])[0].tolist()
        return self.embed_documents([text])[0]


def _onnx_query_encoder(model: Any, cache_dir: Path, threads: int) -> Any:
    """The ONNX question encoder, or None (PyTorch answers) when it cannot be had."""
    try:
        from app.onnx_query import OnnxQueryEncoder

        return OnnxQueryEncoder(model, cache_dir, threads)
    except Exception as exc:  # noqa: BLE001 - any export or load failure: keep PyTorch
        # Slower, never wrong: the API still answers with the vectors ingestion stores.
        logger.warning("question embedding stays on PyTorch (ONNX unavailable: %s)", exc)
        return None
