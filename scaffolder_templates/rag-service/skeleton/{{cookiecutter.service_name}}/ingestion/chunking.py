"""Split documents into chunks with deterministic ids (LangChain text splitters)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from ingestion.loaders import LoadedDocument

# Fixed namespace: the same chunk gets the same id on every machine and every run.
CHUNK_NAMESPACE = uuid.UUID("6f1c1f9e-2b1a-4d55-9a57-0d2f9d1a6c11")
_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    metadata: dict[str, Any]


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        if chunk_overlap >= chunk_size:
            raise ValueError(
                f"chunk overlap ({chunk_overlap}) must be smaller than chunk size ({chunk_size})"
            )
        self.headers = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=False)
        self.splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )

    def split(self, documents: list[LoadedDocument], source_type: str) -> list[Chunk]:
        """All chunks of one source, numbered across its documents (PDF pages)."""
        chunks: list[Chunk] = []
        for document in documents:
            sections = (
                self.headers.split_text(document.text)
                if document.kind != "pdf"
                else [_Section(document.text, {})]
            )
            for section in sections:
                heading = " > ".join(
                    section.metadata[key] for _, key in _HEADERS if key in section.metadata
                )
                for text in self.splitter.split_text(section.page_content):
                    if not text.strip():
                        continue
                    metadata = {
                        "source": document.source,
                        "source_type": source_type,
                        "title": document.title,
                        "section": heading or None,
                        "kind": document.kind,
                        **document.metadata,
                        "chunk_index": len(chunks),
                    }
                    chunks.append(Chunk(chunk_id(text, metadata), text, metadata))
        return chunks


@dataclass
class _Section:
    page_content: str
    metadata: dict[str, str]


def chunk_id(text: str, metadata: dict[str, Any]) -> str:
    """Content hash of text and metadata: an unchanged chunk keeps its id."""
    digest = hashlib.sha256(
        (text + "\x00" + json.dumps(metadata, sort_keys=True, default=str)).encode()
    ).hexdigest()
    return str(uuid.uuid5(CHUNK_NAMESPACE, digest))
