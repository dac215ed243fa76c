"""Flattened search rows: one (key, value) row per leaf of an entity.

Filters, facets and full-text search read these rows through indexes instead of
loading and scanning whole entity documents (Backstage's ``search`` table design).
Keys are dotted lowercase paths (``spec.type``, ``metadata.tags``); list items share
their key.

Annotations and labels are not search rows: they are ~a third of a typical entity's
leaves (``backstage.io/managed-by-location``, ``backstage.io/kubernetes-id``, ...) and
each search row costs an entry in the (key, value, kind, uid) index, the bulk of an
import's database time. They go into one document per entity (``map_fields``, the
``catalog_entities.metadata_maps`` column) that a GIN index answers on PostgreSQL; the
filters, facets and order fields read those keys from there (``catalog.map_fields``) with the same
semantics: lowercase keys and values, case-insensitive matching, original spelling for
facets.
"""

from __future__ import annotations

import json
from typing import Any

# Longer values are not indexed (as in Backstage): nobody filters on a whole document.
MAX_VALUE_LENGTH = 200
MAX_KEY_LENGTH = 200
_SKIPPED_TOP_LEVEL = {"relations"}
# Metadata maps whose entries go into ``map_fields`` instead of search rows.
MAP_FIELDS = ("annotations", "labels")
MAP_KEY_PREFIXES = tuple(f"metadata.{field}." for field in MAP_FIELDS)
# uid is a column (filters use it); the etag changes on every write and nobody filters on it.
_SKIPPED_KEYS = {"metadata.uid", "metadata.etag"}


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def search_rows(entity: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, lowercase value, original value) rows, de-duplicated.

    Every imported entity passes through here (~20 leaves each): a path is lowercased
    and checked once for all the items of its list, plain strings skip ``_scalar``.
    """
    rows: dict[tuple[str, str], str] = {}

    def visit(path: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if type(item) is str:  # most leaves: no call (same rules as below)
                    if (
                        len(item) <= MAX_VALUE_LENGTH
                        and len(child) <= MAX_KEY_LENGTH
                        and child not in _SKIPPED_KEYS
                    ):
                        rows.setdefault((child.lower(), item.lower()), item)
                else:
                    visit(child, item)
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

    metadata = entity.get("metadata") or {}
    for key, value in entity.items():
        if key == "metadata" and isinstance(value, dict):
            visit("metadata", {f: v for f, v in value.items() if str(f).lower() not in MAP_FIELDS})
        elif key not in _SKIPPED_TOP_LEVEL:
            visit(key, value)
    if not metadata.get("namespace"):
        rows.setdefault(("metadata.namespace", "default"), "default")
    return [(key, value, original) for (key, value), original in rows.items()]


def is_map_key(key: str) -> bool:
    """Whether a (lowercase) field path is an annotation or label, read from map_fields."""
    return key.startswith(MAP_KEY_PREFIXES)


def map_fields(entity: dict[str, Any]) -> str | None:
    """The entity's annotations and labels as the JSON text stored in ``metadata_maps``.

    ``{"metadata.annotations.<key>": [value, Original Value, ...]}``: lowercase path ->
    pairs of lowercase and original value (more than one pair only when two keys differ
    in case alone). Same limits as search rows: longer keys and values are not indexed.
    None when the entity has neither.
    """
    metadata = entity.get("metadata") or {}
    found: dict[str, list[str]] = {}
    for field, entries in metadata.items():
        # Matched like the search rows' paths: lowercase (``metadata.Labels`` included).
        if str(field).lower() not in MAP_FIELDS or not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            text = value if type(value) is str else _scalar(value)
            path = f"metadata.{field}.{name}"
            if text is None or len(path) > MAX_KEY_LENGTH or len(text) > MAX_VALUE_LENGTH:
                continue
            pairs = found.setdefault(path.lower(), [])
            lowered = text.lower()
            if lowered not in pairs[::2]:
                pairs += (lowered, text)
    return json.dumps(found, ensure_ascii=False, separators=(",", ":")) if found else None
