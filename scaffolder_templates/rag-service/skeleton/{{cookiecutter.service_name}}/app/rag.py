"""The RAG chain: retrieve from Qdrant, keep relevant chunks, answer grounded (LCEL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_core.vectorstores import VectorStore

SYSTEM_PROMPT = """You answer questions for {service} using ONLY the numbered context passages.
Rules:
- Every statement must be supported by the context; cite passages like [1] or [2].
- If the context does not contain the answer, say exactly:
  "I don't know based on the available documents."
- Do not use outside knowledge. Be concise."""

NO_CONTEXT_ANSWER = "I don't know based on the available documents."
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class RetrievedChunk:
    document: Document
    score: float

    def citation(self) -> dict[str, Any]:
        meta = self.document.metadata
        section_or_page: str | None = None
        if meta.get("page") is not None:
            section_or_page = f"page {meta['page']}"
        elif meta.get("section"):
            section_or_page = str(meta["section"])
        text = " ".join(self.document.page_content.split())
        return {
            "source": meta.get("source", ""),
            "title": meta.get("title", ""),
            "section_or_page": section_or_page,
            "score": round(float(self.score), 4),
            "snippet": text[:SNIPPET_CHARS],
        }


@dataclass
class Answer:
    text: str
    chunks: list[RetrievedChunk]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    called_llm: bool = False
    usage_reported: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def format_context(chunks: Sequence[RetrievedChunk]) -> str:
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        meta = chunk.document.metadata
        where = meta.get("title") or meta.get("source", "")
        parts.append(f"[{i}] ({where})\n{chunk.document.page_content}")
    return "\n\n".join(parts)


def estimate_tokens(text: str) -> int:
    """Rough count (~4 characters a token) for models that report no usage."""
    return max(1, len(text) // 4) if text else 0


class RagPipeline:
    def __init__(
        self,
        vector_store: VectorStore,
        llm: Runnable,
        *,
        service: str,
        k: int,
        relevance_threshold: float,
    ) -> None:
        self.vector_store = vector_store
        self.k = k
        self.relevance_threshold = relevance_threshold
        prompt = ChatPromptTemplate.from_messages(
            [
                ("system", SYSTEM_PROMPT),
                MessagesPlaceholder("history"),
                ("human", "Context:\n{context}\n\nQuestion: {question}"),
            ]
        ).partial(service=service)
        # LCEL: grounded prompt -> chat model (with fallbacks). The numbered context is
        # formatted before the chain: as a RunnablePassthrough.assign step it cost ~2 ms
        # of LangChain bookkeeping per question (run managers, signature inspection of
        # the lambda) for one string join.
        self.chain: Runnable = prompt | llm

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        hits = self.vector_store.similarity_search_with_score(question, k=self.k)
        return [
            RetrievedChunk(doc, score) for doc, score in hits if score >= self.relevance_threshold
        ]

    async def astream(
        self,
        question: str,
        chunks: list[RetrievedChunk],
        history: Sequence[BaseMessage] = (),
    ) -> AsyncIterator[AIMessageChunk]:
        """Yields the model's chunks; the caller merges them (usage is on the last one)."""
        inputs = {
            "question": question,
            "context": format_context(chunks),
            "history": list(history),
        }
        async for chunk in self.chain.astream(inputs):
            yield chunk
