"""Request and response bodies of the RAG API (the OpenAPI in catalog-info.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class QueryRequest(BaseModel):
    question: str = Field(min_length=1, description="The question, in plain language.")
    adapter: str | None = Field(
        default=None,
        description="A LoRA adapter to answer with (one of the service's adapters); "
        "absent: the base model.",
    )

    @field_validator("question")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank; ask something")
        return value.strip()


class Citation(BaseModel):
    source: str
    title: str
    section_or_page: str | None
    score: float
    snippet: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # False when the model reported no usage and the counts are estimates.
    reported_by_model: bool = True


class QueryResponse(BaseModel):
    answer: str
    citations: list[Citation]
    usage: Usage
    latency_ms: float
    model: str


class RetrieveRequest(QueryRequest):
    """The same question as /query; nothing is generated."""


class RetrievedPassage(BaseModel):
    source: str
    title: str
    section_or_page: str | None
    # Relevance: the mean of similarity and coverage (what the threshold compares).
    score: float
    # Cosine similarity of the question's and the passage's embeddings.
    similarity: float
    # Share of the question's terms found in the passage.
    coverage: float
    text: str


class RetrieveResponse(BaseModel):
    # The chunks /query would give the LLM: ranked, at or above the threshold.
    chunks: list[RetrievedPassage]
    # True when none reaches the threshold: /query would answer "I don't know".
    refused: bool
    # The best relevance among the top k before the threshold (what calibration reads).
    best_score: float | None
    k: int
    threshold: float
    ranking: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False

    @field_validator("messages")
    @classmethod
    def ends_with_user(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        if value[-1].role != "user" or not value[-1].content.strip():
            raise ValueError("the last message must be a non-empty user message (the question)")
        return value
