"""Entities as readers see them: the stored document plus its relations.

Only forward relation rows are stored (the source is the entity whose spec names the
relation, ``catalog.relations``); an entity's relations are the rows it is the source
of and the reverse of the rows it is the target of.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, or_, select, text
from sqlalchemy.orm import Session

from catalog.bulk import chunks, fetch_tuples
from catalog.relations import REVERSE
from catalog.tables import CatalogEntity, CatalogRelation

# Per ref, the (type, target ref) relations a writer just stored for it.
Forward = Mapping[str, list[tuple[str, str]]]


# The type a relation row has as its target entity sees it (``relations.REVERSE``); the
# types are fixed names.
_TYPE_SEEN_BY_TARGET = (
    "CASE type "
    + " ".join(f"WHEN '{stored}' THEN '{seen}'" for stored, seen in sorted(REVERSE.items()))
    + " ELSE type END"
)


def _in_list(
    session: Session,
    column: str,
    name: str,
    values: Sequence[str],
    params: dict[str, Any],
    lists: list[str],
) -> str:
    """SQL text for ``column IN values`` (as ``bulk.any_of``): one comma-joined text the
    server splits on PostgreSQL (refs hold no comma), an expanding list on SQLite."""
    joined = ",".join(values)
    if session.get_bind().dialect.name == "postgresql" and joined.count(",") == len(values) - 1:
        params[name] = joined
        return f"{column} = ANY(string_to_array(:{name}, ','))"
    params[name] = list(values)
    lists.append(name)
    return f"{column} IN :{name}"


def relation_pairs(
    session: Session, refs: Sequence[str], forward: Forward | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Per ref, its sorted (type, target) relations, in both directions.

    ``forward``: refs whose own rows the caller knows (it just wrote them); only their
    reverse direction is read. One query per chunk of refs reads both directions, each
    pair once (UNION: ``a dependsOn b`` and ``b dependencyOf a`` give ``a`` one pair).
    """
    forward = forward or {}
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for chunk in chunks(list(refs)):
        # SQL text: built from expression objects, this statement cost a fifth of a
        # by-query request's CPU to build and to key for the compiled-statement cache.
        params: dict[str, Any] = {}
        lists: list[str] = []
        targets = _in_list(session, "target_ref", "targets", chunk, params, lists)
        sql = f"SELECT target_ref, {_TYPE_SEEN_BY_TARGET}, source_ref FROM catalog_relations "
        sql += f"WHERE {targets}"
        outgoing = [ref for ref in chunk if ref not in forward]
        if outgoing:
            sources = _in_list(session, "source_ref", "sources", outgoing, params, lists)
            sql += " UNION SELECT source_ref, type, target_ref FROM catalog_relations "
            sql += f"WHERE {sources}"
        else:
            sql = "SELECT DISTINCT" + sql[len("SELECT") :]
        statement = text(sql).bindparams(*(bindparam(name, expanding=True) for name in lists))
        for me, seen_type, other in fetch_tuples(session, statement, params):
            found[me].append((seen_type, other))
    for ref, pairs in forward.items():
        if ref in found:
            found[ref] = list(set(found[ref]) | set(pairs))
        else:
            found[ref] = list(pairs)
    return {ref: sorted(pairs) for ref, pairs in found.items()}


def _json_item(type_sql: str, target_sql: str) -> str:
    """SQL text for one relation as the JSON text of its list item. Types and refs are
    validated names (no quotes, backslashes or control characters) and every character
    of them sorts after the closing quote, so these texts sort as (type, target) do."""
    return f"""('{{"type":"' || {type_sql} || '","targetRef":"' || {target_sql} || '"}}')"""


def relation_texts(session: Session, refs: Sequence[str]) -> dict[str, str]:
    """Per ref, its relations (both directions, each once, sorted) as the JSON text of
    the list's items, made by the database: a listing splices them into the stored
    documents without a Python object per relation (~25k of them in 7,000 Components)."""
    found: dict[str, list[str]] = defaultdict(list)
    for chunk in chunks(list(refs)):
        params: dict[str, Any] = {}
        lists: list[str] = []
        targets = _in_list(session, "target_ref", "targets", chunk, params, lists)
        sources = _in_list(session, "source_ref", "sources", chunk, params, lists)
        sql = (
            f"SELECT target_ref, {_json_item(_TYPE_SEEN_BY_TARGET, 'source_ref')} "
            f"FROM catalog_relations WHERE {targets} "
            f"UNION SELECT source_ref, {_json_item('type', 'target_ref')} "
            f"FROM catalog_relations WHERE {sources}"
        )
        statement = text(sql).bindparams(*(bindparam(name, expanding=True) for name in lists))
        for me, item in fetch_tuples(session, statement, params):
            found[me].append(item)
    return {ref: ",".join(sorted(items)) for ref, items in found.items()}


def with_relations(
    session: Session,
    rows: Iterable[tuple[str, str, str | dict[str, Any]]],
    forward: Forward | None = None,
) -> list[dict[str, Any]]:
    """The entities of (uid, ref, stored JSON text or document) rows, with relations."""
    rows = list(rows)
    pairs = relation_pairs(session, [ref for _, ref, _ in rows], forward)
    result = []
    for _uid, ref, body in rows:
        entity = json.loads(body) if isinstance(body, str) else body
        entity["relations"] = [{"type": t, "targetRef": target} for t, target in pairs.get(ref, ())]
        result.append(entity)
    return result


def read_one(session: Session, where: Any) -> dict[str, Any] | None:
    """One entity with its relations in a single query (one round trip, not two).

    The body repeats on each of the entity's relation rows; for one entity with a
    handful of relations that costs less than a second query.
    """
    rows = (
        session.connection()
        .execute(
            select(
                CatalogEntity.body,
                CatalogEntity.entity_ref,
                CatalogRelation.source_ref,
                CatalogRelation.type,
                CatalogRelation.target_ref,
            )
            .outerjoin(
                CatalogRelation,
                or_(
                    CatalogRelation.source_ref == CatalogEntity.entity_ref,
                    CatalogRelation.target_ref == CatalogEntity.entity_ref,
                ),
            )
            .where(where)
        )
        .all()
    )
    if not rows:
        return None
    entity: dict[str, Any] = json.loads(rows[0].body)
    ref = rows[0].entity_ref
    pairs: set[tuple[str, str]] = set()
    for row in rows:
        if row.type is None:
            continue
        # A row can name the entity as source, target or both (a self-relation).
        if row.source_ref == ref:
            pairs.add((row.type, row.target_ref))
        if row.target_ref == ref:
            pairs.add((REVERSE.get(row.type, row.type), row.source_ref))
    entity["relations"] = [{"type": t, "targetRef": target} for t, target in sorted(pairs)]
    return entity
