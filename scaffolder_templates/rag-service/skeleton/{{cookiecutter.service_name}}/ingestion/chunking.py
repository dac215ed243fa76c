"""Split documents into chunks of useful size with deterministic ids.

Markdown (and HTML converted to it) is cut at its headings into sections; consecutive
small sections are merged up to the chunk size, a section larger than the chunk size is
split by LangChain's RecursiveCharacterTextSplitter (paragraphs, then lines, then words,
with overlap). Each chunk starts with its heading path ("pg_dump > Options"), which is
also in its metadata (`section`, `headings`): a chunk of three lines under "Options"
still says what it is about, to the embedding model, to the lexical index and to the LLM.
PDF pages are split by size only (they carry no headings).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from app.lexical import ANALYZER
from ingestion.loaders import LoadedDocument, normalize_title

# Fixed namespace: the same chunk gets the same id on every machine and every run.
CHUNK_NAMESPACE = uuid.UUID("6f1c1f9e-2b1a-4d55-9a57-0d2f9d1a6c11")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
PATH_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass
class Section:
    path: list[str]
    text: str


@dataclass
class _Piece:
    path: list[str]
    texts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.texts) + 2 * max(0, len(self.texts) - 1)


def sections(markdown: str) -> Iterator[Section]:
    """Sections at every Markdown heading (not inside fenced code), with the path of
    headings above each."""
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            # A heading with nothing under it but the next heading stays with that one.
            if any(ln.strip() and not _HEADING.match(ln) for ln in lines):
                yield Section([t for _, t in stack], "\n".join(lines).strip())
                lines = []
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, normalize_title(match.group(2))))
        lines.append(line)
    if "".join(lines).strip():
        yield Section([t for _, t in stack], "\n".join(lines).strip())


def _with_title(path: list[str], title: str) -> list[str]:
    """The document title leads the path unless the first heading already says it."""
    if not title:
        return path
    if path and path[0].casefold() == title.casefold():
        return path
    return [title, *path]


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        if chunk_overlap >= chunk_size:
            raise ValueError(
                f"chunk overlap ({chunk_overlap}) must be smaller than chunk size ({chunk_size})"
            )
        self.chunk_size = chunk_size
        self.splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )

    def _pieces(self, document: LoadedDocument) -> Iterator[_Piece]:
        """Sections packed greedily up to the chunk size, big ones split."""
        if document.kind == "pdf":
            found = [Section([], document.text)]
        else:
            found = list(sections(document.text))
        current: _Piece | None = None
        for section in found:
            path = _with_title(section.path, document.title)
            label = PATH_SEPARATOR.join(path)
            if current is not None and current.size + 2 + len(section.text) <= self.chunk_size:
                current.texts.append(section.text)
                current.paths.append(label)
                continue
            if len(section.text) <= self.chunk_size:
                if current is not None:
                    yield current
                current = _Piece(path, [section.text], [label])
                continue
            # A big section: split it; a small piece before it joins its first part.
            text, first_labels = section.text, [label]
            if current is not None and current.size < self.chunk_size // 4:
                text = "\n\n".join([*current.texts, section.text])
                first_labels = [*current.paths, label]
            elif current is not None:
                yield current
            current = None
            parts = [p for p in self.splitter.split_text(text) if p.strip()]
            for number, part in enumerate(parts):
                piece = _Piece(path, [part], first_labels if number == 0 else [label])
                if number < len(parts) - 1:
                    yield piece
                else:  # the tail may take the small sections that follow
                    current = piece
        if current is not None:
            yield current

    def split(self, documents: list[LoadedDocument], source_type: str) -> list[Chunk]:
        """All chunks of one source, numbered across its documents (PDF pages)."""
        chunks: list[Chunk] = []
        for document in documents:
            for piece in self._pieces(document):
                heading = PATH_SEPARATOR.join(piece.path)
                body = "\n\n".join(piece.texts)
                text = f"{heading}\n\n{body}" if heading else body
                metadata = {
                    "source": document.source,
                    "source_type": source_type,
                    "title": document.title,
                    "section": heading or None,
                    "headings": list(dict.fromkeys(piece.paths)),
                    "kind": document.kind,
                    **document.metadata,
                    "chunk_index": len(chunks),
                }
                chunks.append(Chunk(chunk_id(text, metadata), text, metadata))
        return chunks


def chunk_id(text: str, metadata: dict[str, Any]) -> str:
    """Content hash of text and metadata: an unchanged chunk keeps its id. The lexical
    analyzer is part of it, so a new one rewrites every chunk's BM25 vector."""
    digest = hashlib.sha256(
        (
            text + "\x00" + json.dumps(metadata, sort_keys=True, default=str) + "\x00" + ANALYZER
        ).encode()
    ).hexdigest()
    return str(uuid.uuid5(CHUNK_NAMESPACE, digest))
