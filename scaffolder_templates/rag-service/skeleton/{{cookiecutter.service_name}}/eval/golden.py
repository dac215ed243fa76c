"""Reading golden sets: JSON Lines (one object a line) or a JSON array of objects.

Field names vary between teams and tools, so each field has aliases; a missing one is
named with the line and every name it may have. `expected_sources: []` (or
`answerable: false`) marks a question the documents cannot answer: the service must
refuse it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALIASES: dict[str, tuple[str, ...]] = {
    "question": ("question", "query", "q", "prompt", "input"),
    "expected_sources": (
        "expected_sources",
        "sources",
        "expected_source",
        "source",
        "expected_documents",
        "documents",
        "pages",
        "page",
        "relevant_docs",
    ),
    "quote": ("quote", "passage", "expected_passage", "evidence", "context"),
    "expected_answer": (
        "expected_answer",
        "answer",
        "reference_answer",
        "reference",
        "ground_truth",
    ),
}


class GoldenError(ValueError):
    """A golden file that cannot be read; the message names the line and the field."""


@dataclass(frozen=True)
class GoldenItem:
    question: str
    expected_sources: list[str]
    expected_answer: str = ""
    quote: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def answerable(self) -> bool:
        return bool(self.expected_sources)


def _field(row: dict[str, Any], name: str) -> tuple[bool, Any]:
    for alias in ALIASES[name]:
        if alias in row:
            return True, row[alias]
    return False, None


def _sources(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise GoldenError(f"{where}: expected_sources must be a list of paths (or one path)")


def parse_item(row: Any, where: str) -> GoldenItem:
    if not isinstance(row, dict):
        raise GoldenError(f"{where}: expected a JSON object, got {type(row).__name__}")
    found, question = _field(row, "question")
    if not found or not isinstance(question, str) or not question.strip():
        raise GoldenError(f"{where}: no question; name it one of {', '.join(ALIASES['question'])}")
    found, sources = _field(row, "expected_sources")
    if not found:
        if row.get("answerable") is False:
            sources = []
        else:
            raise GoldenError(
                f"{where}: no expected_sources (also read as "
                f"{', '.join(ALIASES['expected_sources'][1:])}); list the documents that "
                'answer the question, or "expected_sources": [] for one the documents '
                "cannot answer"
            )
    _, quote = _field(row, "quote")
    _, answer = _field(row, "expected_answer")
    known = {alias for aliases in ALIASES.values() for alias in aliases} | {"answerable"}
    return GoldenItem(
        question=question.strip(),
        expected_sources=_sources(sources, where),
        expected_answer=str(answer or ""),
        quote=str(quote or ""),
        extra={k: v for k, v in row.items() if k not in known},
    )


def read_golden(path: Path) -> list[GoldenItem]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GoldenError(f"{path}: cannot read the golden set ({exc.strerror or exc})") from exc
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GoldenError(f"{path}: not valid JSON ({exc})") from exc
        return [parse_item(row, f"{path}: item {i}") for i, row in enumerate(rows, start=1)]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(("#", "//")):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenError(f"{path}:{number}: not a JSON object ({exc})") from exc
        items.append(parse_item(row, f"{path}:{number}"))
    return items
