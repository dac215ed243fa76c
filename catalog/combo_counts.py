"""Running counts per combination of kind and single-valued keys (``CatalogComboCount``).

Writers of search rows append one delta row per combination they add or remove (in
their transaction, next to the facet-count deltas); ``count_combinations`` answers the
exact total of any filter made only of these keys' conditions -- ANDs, ORs, several
values, "the key exists" -- from a few hundred rows instead of the matching entities.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from catalog.bulk import insert_rows
from catalog.tables import COMBINED_KEYS, COMBO_COLUMNS, CatalogComboCount

# A value per COMBO_COLUMNS: kind, then COMBINED_KEYS' columns in their order, then multi.
Combination = tuple[Any, ...]
COLUMNS = COMBO_COLUMNS
_POSITION = {key: index for index, key in enumerate(COMBINED_KEYS)}


def combination(kind: str, pairs: Iterable[tuple[str, str]]) -> Combination:
    """The combination of an entity of ``kind`` whose search rows are (key, value)
    ``pairs`` (lowercase, as ``catalog.search.search_rows`` makes them)."""
    values: list[str | None] = [None] * len(_POSITION)
    several = [False] * len(_POSITION)
    for key, value in pairs:
        index = _POSITION.get(key)
        if index is None:
            continue
        if values[index] is not None and values[index] != value:
            several[index] = True
        values[index] = value
    if any(several):
        values = [None if many else value for value, many in zip(values, several, strict=True)]
    return (kind, *values, int(any(several)))


def deltas(combinations: Iterable[Combination], sign: int = 1) -> list[tuple[Any, ...]]:
    """Delta rows (``COLUMNS`` + n) for entities of these combinations that are added
    (``sign`` 1) or removed (-1)."""
    return [(*combo, sign * n) for combo, n in Counter(combinations).items()]


def append_deltas(session: Session, rows: list[tuple[Any, ...]]) -> None:
    insert_rows(session, CatalogComboCount.__table__, (*COLUMNS, "n"), rows)


def answers(alternatives: list[dict[str, list[str] | None]]) -> bool:
    """Whether ``count_combinations`` can count this filter (OR of AND-groups)."""
    return bool(alternatives) and all(
        key == "kind" or key in COMBINED_KEYS for group in alternatives for key in group
    )


def count_combinations(
    session: Session, alternatives: list[dict[str, list[str] | None]]
) -> tuple[int, int | None] | None:
    """(entities matching, entities of the filter's kinds when it is one group) from the
    running counts, for a filter ``answers`` accepts; None when an entity of those kinds
    holds several values under one of the keys (its combination cannot say which
    condition it meets: the caller counts the entities)."""
    params: dict[str, Any] = {}
    expanding: list[str] = []

    def listed(values: list[str]) -> str:
        name = f"v{len(expanding)}"
        params[name] = values
        expanding.append(name)
        return f":{name}"

    groups = []
    all_kinds: set[str] | None = set()
    for group in alternatives:
        parts = []
        kinds = group.get("kind")
        if kinds:
            parts.append(f"kind IN {listed(kinds)}")
            if all_kinds is not None:
                all_kinds.update(kinds)
        else:
            all_kinds = None  # a group of any kind: every combination can match
        for key, values in group.items():
            if key == "kind":
                continue
            column = COMBINED_KEYS[key]
            parts.append(f"{column} IN {listed(values)}" if values else f"{column} IS NOT NULL")
        groups.append("(" + (" AND ".join(parts) or "1 = 1") + ")")
    where = f" WHERE kind IN {listed(sorted(all_kinds))}" if all_kinds else ""
    statement = text(
        "SELECT coalesce(sum(CASE WHEN multi = 0 AND (" + " OR ".join(groups) + ") "
        "THEN n ELSE 0 END), 0), coalesce(sum(CASE WHEN multi <> 0 THEN n ELSE 0 END), 0), "
        f"coalesce(sum(n), 0) FROM catalog_combo_counts{where}"
    ).bindparams(*(bindparam(name, expanding=True) for name in expanding))
    matches, several, population = session.connection().execute(statement, params).one()
    if several:
        return None
    return int(matches), int(population) if len(alternatives) == 1 else None
