"""Runtime settings, read from the environment (or a .env file).

Defaults come from the answers given in the rag-portal form; every value can be
overridden per environment without touching code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.calibration import resolve_threshold

SERVICE_NAME = "{{ cookiecutter.service_name }}"
REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = SERVICE_NAME

    # Vector store: a Qdrant server when QDRANT_URL is set, else Qdrant local mode
    # (a folder on disk) for `make dev` and tests.
    qdrant_url: str = ""
    qdrant_api_key: str = ""
    qdrant_path: Path = REPO_ROOT / ".qdrant"
    collection_name: str = SERVICE_NAME

    # Embeddings: "local" runs sentence-transformers in-process (model by name or path),
    # "openai" calls an OpenAI-compatible /v1/embeddings endpoint, "hashing" is a
    # dependency-free lexical embedding for offline tests. The collection's vector size
    # is what the model produces (an endpoint is asked once); embedding_dimension sizes
    # the hashing embeddings and the deploy bundle's collection bootstrap.
    embedding_provider: Literal["local", "openai", "hashing"] = "local"
    embedding_model: str = "{{ cookiecutter.embedding_model }}"
    embedding_dimension: int = {{ cookiecutter.embedding_dimension }}
    embedding_base_url: str = ""
    embedding_api_key: str = "unused"
    embedding_batch_size: int = Field(default=64, ge=1)
    # torch (and ONNX Runtime) threads of the RAG API for embedding questions with the
    # local model (app/runtime.py says why one is the default); 0 = the library's
    # default, one per CPU it sees. Ingestion keeps torch's default.
    query_embedding_threads: int = Field(default=1, ge=0)
    # How the API embeds questions with the local model: "onnx" runs the same model
    # exported to ONNX Runtime (2-3x faster for a question; exported once into
    # onnx_cache_dir, checked against PyTorch at start, PyTorch kept if they differ),
    # "torch" runs sentence-transformers as ingestion does.
    query_embedding_backend: Literal["onnx", "torch"] = "onnx"
    onnx_cache_dir: Path = Path.home() / ".cache" / "rag-service" / "onnx"

    # LLM: the vLLM OpenAI-compatible endpoint, with a CPU (llama.cpp) fallback.
    llm_base_url: str = "http://vllm:8000/v1"
    llm_model: str = "{{ cookiecutter.model }}"
    llm_api_key: str = "unused"
    llm_timeout_s: float = 60.0
    fallback_llm_base_url: str = "{{ 'http://llama-cpp:8080/v1' if cookiecutter.cpu_fallback_enabled == 'true' else '' }}"
    fallback_llm_model: str = "{{ cookiecutter.model }}-cpu"
    fallback_llm_api_key: str = "unused"
    # LoRA adapters vLLM serves beside the base model (--lora-modules): a request names
    # one (OpenAI "model", or "adapter" on /query); JSON list in LORA_ADAPTERS.
    lora_adapters: list[str] = {{ cookiecutter.lora_adapters['items'] | map(attribute='name') | list | jsonify(None) }}
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = 0.0

    # Retrieval and request limits.
    retrieval_k: int = Field(default=4, ge=1, le=50)
    # "hybrid": the candidates of the embedding search and of a BM25 search (Qdrant sparse
    # vectors, IDF on the server) re-ranked by cosine similarity and question-term
    # coverage (app/rag.py); "dense": the embedding search alone.
    retrieval_ranking: Literal["hybrid", "dense"] = "hybrid"
    # Candidates each search hands to the re-ranking.
    retrieval_candidates: int = Field(default=20, ge=1, le=500)
    # Relevance (the mean of the cosine similarity of question and chunk and the share of
    # the question's terms the chunk holds) that the best of the top k must reach; when
    # none does, the API answers "I don't know" without calling the LLM.
    # Unset: calibrated by `python -m eval --calibrate` into CALIBRATION_FILE for this
    # embedding model and ranking, else the model's default (app/calibration.py).
    relevance_threshold: float | None = None
    calibration_file: Path = REPO_ROOT / "app" / "calibration.json"
    max_question_chars: int = Field(default=2000, ge=1)

    # Ingestion.
    chunk_size: int = Field(default={{ cookiecutter.chunk_size }}, ge=50)
    chunk_overlap: int = Field(default={{ cookiecutter.chunk_overlap }}, ge=0)
    max_document_bytes: int = Field(default=20_000_000, ge=1)
    sources_file: Path = REPO_ROOT / "sources.json"
    source_cache_dir: Path = REPO_ROOT / ".sources"

    # Usage push to rag-portal (optional): batched records to POST /api/sla/usage.
    ragportal_url: str = "{{ cookiecutter.portal_url }}"
    ragportal_ingest_token: str = ""
    usage_batch_size: int = Field(default=100, ge=1)
    usage_flush_interval_s: float = Field(default=10.0, gt=0)

    # Evaluation judge (hallucination rate); defaults to the serving LLM when empty.
    judge_base_url: str = ""
    judge_model: str = ""
    judge_api_key: str = "unused"
    judge_max_tokens: int = Field(default=1024, ge=16)
    # How the judge's JSON is enforced: "json_schema" (OpenAI, vLLM, llama-server),
    # "json_object" (llama-cpp-python's server: schema as a grammar), "none" (prompt only).
    judge_response_format: Literal["json_schema", "json_object", "none"] = "json_schema"

    # Where relevance_threshold came from (environment, calibration file or default).
    threshold_origin: str = Field(default="", exclude=True)

    @field_validator("relevance_threshold", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # RELEVANCE_THRESHOLD= (as in .env.example) means "not set", not an error.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _resolve_threshold(self) -> Settings:
        if self.relevance_threshold is None:
            self.relevance_threshold, self.threshold_origin = resolve_threshold(
                self.embedding_provider,
                self.embedding_model,
                self.retrieval_ranking,
                self.calibration_file,
            )
        elif not self.threshold_origin:
            self.threshold_origin = "RELEVANCE_THRESHOLD"
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
