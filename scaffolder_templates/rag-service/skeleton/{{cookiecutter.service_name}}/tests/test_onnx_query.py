"""The API's ONNX question encoder: same vectors as PyTorch, exported once, PyTorch kept
when the export cannot be trusted. A tiny random BERT stands in for the real model (no
download; the real MiniLM is checked in rag-portal's own tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app import onnx_query
from app.embeddings import SentenceTransformerEmbeddings, make_embeddings
from app.settings import Settings

WORDS = [
    *("how", "do", "i", "rotate", "the", "api", "key", "which", "gpu", "class"),
    *("does", "model", "need", "for", "replicas"),
]
QUESTIONS = [
    "How do I rotate the API key?",
    "Which GPU class does the model need?",
    "key",
    "how do i rotate the key for the gpu model which replicas need the api class",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer BERT with a word-level vocabulary, saved as a sentence-transformers
    model (transformer + mean pooling + normalize), like all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-model")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=4 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder / "hf")
    BertTokenizerFast.from_pretrained(str(folder)).save_pretrained(folder / "hf")
    model = SentenceTransformer(
        modules=[
            models.Transformer(str(folder / "hf")),
            models.Pooling(32, "mean"),
            models.Normalize(),
        ],
        device="cpu",
    )
    model.save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module: exporting costs seconds, even for a tiny model."""
    return tmp_path_factory.mktemp("onnx-cache")


def test_questions_get_the_vectors_ingestion_stores(tiny_model: str, cache: Path):
    embeddings = SentenceTransformerEmbeddings(tiny_model, onnx_cache_dir=cache)
    assert embeddings.query_encoder is not None
    ingested = np.array(embeddings.embed_documents(QUESTIONS))  # PyTorch, batched, padded
    asked = np.array([embeddings.embed_query(q) for q in QUESTIONS])  # ONNX, one by one
    assert asked.shape == (len(QUESTIONS), 32)
    assert np.allclose(np.linalg.norm(asked, axis=1), 1.0, atol=1e-5)
    assert (ingested * asked).sum(axis=1).min() >= 0.9999
    # Different questions still get different vectors (not a constant graph).
    assert (asked[0] @ asked[1]) < 0.999


def test_the_export_is_cached_and_reused(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    first = SentenceTransformerEmbeddings(tiny_model, onnx_cache_dir=tmp_path)
    assert first.query_encoder is not None
    exported = list(tmp_path.glob("*"))
    assert [p.name for p in exported] == [first.query_encoder.path.name]

    def no_second_export(self, path):
        raise AssertionError("exported again despite the cache")

    monkeypatch.setattr(onnx_query.OnnxQueryEncoder, "_export", no_second_export)
    second = SentenceTransformerEmbeddings(tiny_model, onnx_cache_dir=tmp_path)
    assert second.query_encoder is not None
    assert second.query_encoder.path == first.query_encoder.path
    assert list(tmp_path.glob("*")) == exported  # no temporary file left behind


def test_changed_weights_get_their_own_export(tiny_model: str, cache: Path):
    first = SentenceTransformerEmbeddings(tiny_model, onnx_cache_dir=cache)
    second = SentenceTransformerEmbeddings(tiny_model)
    with torch.no_grad():
        second.model[0].auto_model.embeddings.word_embeddings.weight.mul_(1.5)
    second.query_encoder = onnx_query.OnnxQueryEncoder(second.model, cache)
    assert second.query_encoder.path != first.query_encoder.path
    question = QUESTIONS[0]
    assert np.dot(second.embed_query(question), second.embed_documents([question])[0]) >= 0.9999


def test_disagreeing_export_leaves_questions_on_pytorch(
    tiny_model: str, cache: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(onnx_query, "MIN_AGREEMENT", 1.01)  # nothing can pass
    embeddings = SentenceTransformerEmbeddings(tiny_model, onnx_cache_dir=cache)
    assert embeddings.query_encoder is None
    question = QUESTIONS[1]
    assert embeddings.embed_query(question) == embeddings.embed_documents([question])[0]


def test_only_the_api_uses_onnx_and_only_when_configured(tiny_model: str, cache: Path):
    settings = Settings(
        _env_file=None,
        embedding_provider="local",
        embedding_model=tiny_model,
        onnx_cache_dir=cache,
    )
    assert make_embeddings(settings, for_queries=True).query_encoder is not None
    assert make_embeddings(settings).query_encoder is None  # ingestion, evaluation
    torch_only = settings.model_copy(update={"query_embedding_backend": "torch"})
    assert make_embeddings(torch_only, for_queries=True).query_encoder is None
    with pytest.raises(ValueError, match="query_embedding_backend"):
        Settings(_env_file=None, query_embedding_backend="tensorrt")
