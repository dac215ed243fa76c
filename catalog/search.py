"""Flattened search rows: one (key, value) row per leaf of an entity.

Filters, facets and full-text search read these rows through indexes instead of
loading and scanning whole entity documents (Backstage's ``search`` table design).
Keys are dotted lowercase paths (``spec.type``, ``metadata.tags``,
``metadata.annotations.backstage.io/kubernetes-id``); list items share their key.
"""

from __future__ import annotations

from typing import Any

# Longer values are not indexed (as in Backstage): nobody filters on a whole document.
MAX_VALUE_LENGTH = 200
MAX_KEY_LENGTH = 200
_SKIPPED_TOP_LEVEL = {"relations"}
# uid is a column (filters use it); the etag changes on every write and nobody filters on it.
_SKIPPED_KEYS = {"metadata.uid", "metadata.etag"}


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def search_rows(entity: dict) -> list[tuple[str, str, str]]:
    """(key, lowercase value, original value) rows, de-duplicated.

    Every imported entity passes through here (~20 leaves each): a path is lowercased
    and checked once for all the items of its list, plain strings skip ``_scalar``.
    """
    rows: dict[tuple[str, str], str] = {}

    def visit(path: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{path}.{key}" if path else str(key), item)
            return
        key = path.lower()
        skipped = len(path) > MAX_KEY_LENGTH or path in _SKIPPED_KEYS
        for item in value if isinstance(value, list) else (value,):
            if type(item) is str:
                text: str | None = item
            elif isinstance(item, dict | list):
                visit(path, item)  # nested containers (lists of objects, of lists)
                continue
            else:
                text = _scalar(item)
            if text is None or skipped or len(text) > MAX_VALUE_LENGTH:
                continue
            rows.setdefault((key, text.lower()), text)

    for key, value in entity.items():
        if key not in _SKIPPED_TOP_LEVEL:
            visit(key, value)
    metadata = entity.get("metadata") or {}
    if not metadata.get("namespace"):
        rows.setdefault(("metadata.namespace", "default"), "default")
    return [(key, value, original) for (key, value), original in rows.items()]
