"""Catalog API, shaped like Backstage's catalog backend (``/api/catalog``).

Thin: parse parameters, check who may do what, call the catalog's services:
``EntityReads`` (queries), ``EntityWrites`` (deletes), ``LocationRegistry`` (locations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from itertools import chain
from typing import Any, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from catalog.analyze import analyze_location
from catalog.ancestry import ancestry
from catalog.api_models import EntityQueryParams
from catalog.by_query import query_json
from catalog.cursor import Cursor
from catalog.documents import project
from catalog.entity_reads import EntityReads, check_order_by
from catalog.entity_writes import EntityWrites
from catalog.errors import ErrorDetail, InputError, NotAllowedError, NotFoundError
from catalog.filters import parse_filters
from catalog.location_query import query_locations
from catalog.location_registry import LocationRegistry
from catalog.location_update import update_location
from catalog.locations import LocationPolicy
from catalog.predicates import compile_predicate
from catalog.refresh import refresh_or_raise
from catalog.validation import validate_entity as validate_entity_document
from portal_backend.auth.service import Principal
from portal_backend.catalog_policy import location_policy
from portal_backend.db import session_scope
from portal_backend.deps import (
    ReadPrincipal,
    WritePrincipal,
    query_model,
    query_parameters,
    read_pool,
)
from portal_backend.openapi import MAX_INT
from portal_backend.settings import Settings

router = APIRouter(prefix="/api/catalog", tags=["catalog"])
Result = TypeVar("Result")
# Entities in the first chunk of a streamed GET /entities.
STREAM_FIRST_BATCH = 50


def policy_for(settings: Settings, *, restrict_files: bool = True) -> LocationPolicy:
    return location_policy(settings, restrict_files=restrict_files)


def _session(request: Request) -> AbstractContextManager[Session]:
    return session_scope(request.app.state.session_factory)


async def _read(request: Request, work: Callable[[EntityReads], Result]) -> Result:
    """``work`` with a new session's ``EntityReads``, on the read pool's few threads
    (``portal_backend.read_pool``): short catalog reads only; streamed listings and
    writes keep FastAPI's default pool."""

    def run() -> Result:
        with _session(request) as session:
            return work(EntityReads(session))

    return await read_pool(request).run(run)


def _split(values: list[str]) -> list[str]:
    """``a,b`` and repeated parameters alike, as one list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _int(value: str | None, name: str, *, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InputError(
            f"{name} must be a whole number, got {value!r}", [ErrorDetail(name, "not an integer")]
        ) from None
    if not 0 <= number <= MAX_INT:
        raise InputError(
            f"{name} must be between 0 and {MAX_INT}", [ErrorDetail(name, f"0 to {MAX_INT}")]
        )
    return number


def _order_fields(values: list[str], *, separator: str, param: str) -> list[tuple[str, str]]:
    """Every ``field,asc`` (by-query) or ``asc:field`` (GET /entities) directive, in order
    (the first is the most significant, as in Backstage)."""
    pairs: list[tuple[str, str]] = []
    for index, directive in enumerate(values):
        if separator == ",":
            field, _, order = directive.partition(",")
        else:
            order, _, field = directive.partition(":")
            if not field:  # a bare field name
                field, order = order, "asc"
        order = (order or "asc").strip().lower()
        if not field.strip() or order not in ("asc", "desc"):
            example = "metadata.name,asc" if separator == "," else "asc:metadata.name"
            raise InputError(
                f"invalid {param} {directive!r}; use e.g. {example}",
                [ErrorDetail(f"{param}[{index}]", f"expected {example}")],
            )
        pairs.append((field.strip(), order))
    return check_order_by(pairs, param=param)


def _check_filters(filters: list[str]) -> None:
    parse_filters(filters)  # raises InputError with the offending condition


@router.get("/entities")
def get_entities(
    request: Request,
    filter: list[str] = Query(default=[]),
    fields: list[str] = Query(default=[]),
    order: list[str] = Query(default=[]),
    limit: str | None = None,
    offset: str | None = None,
    after: str | None = None,
    _: Principal = ReadPrincipal,
) -> Response:
    """A JSON array of entities, streamed; ``limit`` + ``after`` pages with a Link header."""
    _check_filters(filter)
    field_list = _split(fields)
    order_by = _order_fields(order, separator=":", param="order")
    size = _int(limit, "limit")
    skip = _int(offset, "offset", default=0) or 0
    if after:
        # Fail with 400 before streaming starts; the cursor's query and order apply.
        state = Cursor.decode(after, param="after")
        filter, order_by = state.filters, state.sort_spec()
    factory = request.app.state.session_factory

    if size is not None:
        with session_scope(factory) as session:
            reads = EntityReads(session)
            items = list(
                reads.iter_entities(
                    filters=filter,
                    order_by=order_by,
                    offset=skip,
                    limit=size + 1,
                    after=after,
                )
            )
            headers = {}
            if len(items) > size and size > 0:
                cursor = reads.next_cursor_after(items[size - 1], filters=filter, order_by=order_by)
                headers["Link"] = f'<{request.url.path}?limit={size}&after={cursor}>; rel="next"'
            page = [project(e, field_list) for e in items[:size]]
        return JSONResponse(page, headers=headers)

    def stream() -> Iterator[bytes]:
        # One chunk per keyset batch of the catalog (~1 MB; each chunk is one hop between
        # the worker thread and the event loop); a small first batch, so the first
        # entities leave before the rest is read.
        with session_scope(factory) as session:
            separator = "["
            for texts in EntityReads(session).json_batches(
                filters=filter,
                order_by=order_by,
                fields=field_list,
                offset=skip,
                after=after,
                first_batch=STREAM_FIRST_BATCH,
            ):
                if texts:
                    yield (separator + ",".join(texts)).encode()
                    separator = ","
            yield b"[]" if separator == "[" else b"]"

    chunks = stream()
    # The first batch is read before the answer starts: a query the database refuses
    # (PostgreSQL and a NUL in a filter) is then a 400, not an answer cut off after its
    # 200 status (found by schemathesis, issue 22).
    first = next(chunks)
    return StreamingResponse(chain([first], chunks), media_type="application/json")


@router.get("/entities/by-query", openapi_extra={"parameters": query_parameters(EntityQueryParams)})
async def get_entities_by_query(
    request: Request,
    # The same model is the MCP server's search_catalog input (one definition for both).
    query: EntityQueryParams = Depends(query_model(EntityQueryParams)),
    _: Principal = ReadPrincipal,
) -> Response:
    text = await _read(request, lambda reads: query_json(reads.session, query))
    return Response(text, media_type="application/json")


def _body_list(payload: dict, name: str) -> list[str]:
    value = payload.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{name} must be a list of strings", [ErrorDetail(name, "strings")])
    return value


def _body_int(payload: dict, name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise InputError(
            f"{name} must be a whole number from 0 to {MAX_INT}",
            [ErrorDetail(name, f"0 to {MAX_INT}")],
        )
    return value


def _body_order(payload: dict) -> list[tuple[str, str]]:
    """Backstage's ``orderBy: [{field, order}, ...]``; the first is the most significant."""
    order_by = payload.get("orderBy")
    if order_by is None:
        return []
    directives = order_by if isinstance(order_by, list) else [order_by]
    pairs = []
    for index, directive in enumerate(directives):
        if (
            not isinstance(directive, dict)
            or not isinstance(directive.get("field"), str)
            or not directive["field"].strip()
            or directive.get("order", "asc") not in ("asc", "desc")
        ):
            raise InputError(
                "orderBy must be [{field: 'metadata.name', order: 'asc'|'desc'}, ...]",
                [ErrorDetail(f"orderBy[{index}]", "expected {field, order: asc|desc}")],
            )
        pairs.append((directive["field"].strip(), directive.get("order", "asc")))
    return check_order_by(pairs, param="orderBy")


@router.post("/entities/by-query")
async def query_entities_by_predicate(
    request: Request, payload: Any = Body(default=None), _: Principal = ReadPrincipal
) -> Response:
    """``GET /entities/by-query`` with a predicate ``query`` object in a JSON body."""
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise InputError(
            "body must be {query?, fields?, limit?, offset?, orderBy?, cursor?, fullTextFilter?}",
            [ErrorDetail("", "an object")],
        )
    cursor = payload.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise InputError("cursor must be a string", [ErrorDetail("cursor", "a string")])
    order_by = _body_order(payload)
    full_text = payload.get("fullTextFilter") or {}
    if not isinstance(full_text, dict) or not isinstance(full_text.get("term", ""), str):
        raise InputError(
            "fullTextFilter must be {term: string, fields?: [...]}",
            [ErrorDetail("fullTextFilter", "expected {term, fields?}")],
        )
    total_items = payload.get("totalItems")
    if total_items not in (None, "include", "exclude"):
        raise InputError(
            "totalItems must be 'include' or 'exclude'",
            [ErrorDetail("totalItems", str(total_items))],
        )
    query = payload.get("query")
    if cursor is None and query is not None:
        compile_predicate(query)  # 400 naming the bad path before any work
    arguments: dict[str, Any] = {
        "query": query,
        "order_by": order_by,
        "term": full_text.get("term") or None,
        "term_fields": _body_list(full_text, "fields"),
        "cursor": cursor,
        "limit": _body_int(payload, "limit"),
        "offset": _body_int(payload, "offset") or 0,
        "fields": _body_list(payload, "fields"),
        "include_total": total_items != "exclude",
    }
    text = await _read(request, lambda reads: reads.query_entities_json(**arguments))
    return Response(text, media_type="application/json")


@router.post("/entities/by-refs")
async def get_entities_by_refs(
    request: Request,
    payload: Any = Body(default=None),
    filter: list[str] = Query(default=[]),
    _: Principal = ReadPrincipal,
) -> JSONResponse:
    """Entities in request order; ``null`` where missing or not matching ``filter`` (query
    parameters, as getEntitiesByRefs({entityRefs, filter}) sends them) or the body's
    predicate ``query`` (what the client sends for getEntitiesByRefs({query}))."""
    if not isinstance(payload, dict) or not isinstance(payload.get("entityRefs"), list):
        raise InputError(
            "body must be {entityRefs: [...], fields?: [...], query?: {...}}",
            [ErrorDetail("entityRefs", "a list of entity refs is required")],
        )
    refs = payload["entityRefs"]
    if not all(isinstance(r, str) for r in refs):
        raise InputError("entityRefs must be strings", [ErrorDetail("entityRefs", "strings")])
    fields = payload.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InputError("fields must be a list", [ErrorDetail("fields", "a list of paths")])
    _check_filters(filter)
    query = payload.get("query")
    if query is not None:
        compile_predicate(query)  # 400 naming the bad path
    return await _read(
        request,
        lambda reads: JSONResponse(
            {"items": reads.get_by_refs(refs, filters=filter, fields=fields, query=query)}
        ),
    )


@router.get("/entities/by-name/{kind}/{namespace}/{name}")
async def get_entity_by_name(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> JSONResponse:
    entity = await _read(request, lambda reads: reads.get_by_name(kind, namespace, name))
    if entity is None:
        raise NotFoundError(f"No entity named '{name}' found, with kind '{kind}' in '{namespace}'")
    return JSONResponse(entity)


@router.get("/entities/by-name/{kind}/{namespace}/{name}/ancestry")
async def get_entity_ancestry(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> JSONResponse:
    found = await _read(request, lambda reads: ancestry(reads, f"{kind}:{namespace}/{name}"))
    if found is None:
        raise NotFoundError(f"No entity named '{name}' found, with kind '{kind}' in '{namespace}'")
    return JSONResponse(found)


@router.get("/entities/by-uid/{uid}")
async def get_entity_by_uid(
    uid: str, request: Request, _: Principal = ReadPrincipal
) -> JSONResponse:
    entity = await _read(request, lambda reads: reads.get_by_uid(uid))
    if entity is None:
        raise NotFoundError(f"No entity with uid {uid}")
    return JSONResponse(entity)


@router.delete("/entities/by-uid/{uid}", status_code=204)
def delete_entity_by_uid(uid: str, request: Request, principal: Principal = WritePrincipal) -> None:
    with _session(request) as session:
        if not EntityWrites(session).delete_by_uid(uid, owner_group=principal.write_owners):
            raise NotFoundError(f"No entity with uid {uid}")


@router.get("/entity-facets")
async def get_entity_facets(
    request: Request,
    facet: list[str] = Query(default=[]),
    filter: list[str] = Query(default=[]),
    _: Principal = ReadPrincipal,
) -> JSONResponse:
    if not facet:
        raise InputError(
            "at least one facet is required, e.g. ?facet=spec.type",
            [ErrorDetail("facet", "required")],
        )
    _check_filters(filter)
    return await _read(request, lambda reads: JSONResponse(reads.facets(facet, filter)))


@router.post("/entity-facets")
async def query_entity_facets_by_predicate(
    request: Request, payload: Any = Body(default=None), _: Principal = ReadPrincipal
) -> JSONResponse:
    """``GET /entity-facets`` with a predicate ``query`` object in a JSON body."""
    if not isinstance(payload, dict):
        raise InputError("body must be {facets: [...], query?}", [ErrorDetail("", "an object")])
    facets = _body_list(payload, "facets")
    if not facets:
        raise InputError(
            "at least one facet is required, e.g. {facets: ['spec.type']}",
            [ErrorDetail("facets", "required")],
        )
    query = payload.get("query")
    if query is not None:
        compile_predicate(query)
    return await _read(request, lambda reads: JSONResponse(reads.facets(facets, query=query)))


def _location_body(payload: Any) -> tuple[str, str]:
    """(type, target) of a ``{type, target}`` body (type defaults to url, as in Backstage)."""
    if not isinstance(payload, dict):
        raise InputError("body must be {type, target}", [ErrorDetail("", "an object")])
    location_type = payload.get("type", "url")
    target = payload.get("target")
    if not isinstance(location_type, str) or not isinstance(target, str) or not target:
        raise InputError(
            "body must be {type: 'url'|'file', target: string}",
            [ErrorDetail("target", "required string")],
        )
    return location_type, target


def _file_needs_admin(
    location_type: Any, principal: Principal, field: str = "type", why: str = ""
) -> None:
    """Refuse a ``file`` location from anyone but an admin: it reads the server's disk."""
    if location_type == "file" and not principal.is_admin:
        raise NotAllowedError(
            f"file locations need an admin token{why}", [ErrorDetail(field, "file needs admin")]
        )


@router.post("/locations", status_code=201)
def create_location(
    request: Request,
    payload: Any = Body(default=None),
    dryRun: str | None = None,  # noqa: N803
    onConflict: str | None = None,  # noqa: N803
    principal: Principal = WritePrincipal,
) -> dict[str, Any]:
    location_type, target = _location_body(payload)
    _file_needs_admin(
        location_type,
        principal,
        why=" (as in Backstage, the API accepts url locations from everyone else)",
    )
    if onConflict not in (None, "reject", "refresh"):
        raise InputError("onConflict must be 'reject' or 'refresh'")
    dry_run = (dryRun or "").lower() in ("true", "1", "yes")
    settings = request.app.state.settings
    if onConflict == "refresh" and not dry_run:
        with _session(request) as session:
            existing = LocationRegistry(session).find_location(location_type, target)
        if existing is not None:
            # Through the location's refresh claim, like every other refresh.
            outcome = refresh_or_raise(
                request.app.state.session_factory, existing["id"], policy_for(settings)
            )
            with _session(request) as session:
                entities = EntityReads(session).get_by_refs(outcome.entities)
            return {"location": existing, "entities": [e for e in entities if e], "exists": True}
    with _session(request) as session:
        registry = LocationRegistry(session, policy=policy_for(settings))
        return registry.add_location(
            location_type,
            target,
            dry_run=dry_run,
            managed_by=principal.subject,
            owner_group=principal.write_owners,
        )


@router.get("/locations")
def list_locations(request: Request, _: Principal = ReadPrincipal) -> list[dict]:
    with _session(request) as session:
        return LocationRegistry(session).list_locations_with_status()


@router.post("/locations/by-query")
def query_locations_route(
    request: Request, payload: Any = Body(default=None), _: Principal = ReadPrincipal
) -> dict[str, Any]:
    with _session(request) as session:
        return query_locations(session, payload)


@router.get("/locations/by-entity/{kind}/{namespace}/{name}")
def get_location_by_entity(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> dict:
    with _session(request) as session:
        location = LocationRegistry(session).location_of(f"{kind}:{namespace}/{name}")
    if location is None:
        raise NotFoundError(f"No location for entity {kind}:{namespace}/{name}")
    return location


@router.get("/locations/{location_id}")
def get_location(location_id: str, request: Request, _: Principal = ReadPrincipal) -> dict:
    with _session(request) as session:
        return LocationRegistry(session).get_location(location_id)


@router.put("/locations/{location_id}")
def update_location_route(
    location_id: str,
    request: Request,
    payload: Any = Body(default=None),
    principal: Principal = WritePrincipal,
) -> dict[str, str]:
    location_type, target = _location_body(payload)
    _file_needs_admin(location_type, principal)
    return update_location(
        request.app.state.session_factory,
        location_id,
        location_type,
        target,
        policy_for(request.app.state.settings),
        owner_group=principal.write_owners,
    )


@router.post("/analyze-location")
def analyze_location_route(
    request: Request, payload: Any = Body(default=None), principal: Principal = WritePrincipal
) -> dict[str, Any]:
    # Write scope, like registering: it makes the server fetch what the caller names.
    location = payload.get("location") if isinstance(payload, dict) else None
    if isinstance(location, dict):
        _file_needs_admin(location.get("type"), principal, "location.type")
    with _session(request) as session:
        registry = LocationRegistry(session, policy=policy_for(request.app.state.settings))
        return analyze_location(registry, payload)


@router.delete("/locations/{location_id}", status_code=204)
def delete_location(
    location_id: str, request: Request, principal: Principal = WritePrincipal
) -> None:
    with _session(request) as session:
        LocationRegistry(session).delete_location(location_id, owner_group=principal.write_owners)


@router.post("/refresh")
def refresh(
    request: Request, payload: Any = Body(default=None), _: Principal = WritePrincipal
) -> Response:
    if not isinstance(payload, dict) or not isinstance(payload.get("entityRef"), str):
        raise InputError(
            "body must be {entityRef: 'kind:namespace/name'}",
            [ErrorDetail("entityRef", "required string")],
        )
    settings = request.app.state.settings
    with _session(request) as session:
        location_id = LocationRegistry(session).location_id_of(payload["entityRef"])
    if location_id is not None:
        # The registered file passed the roots check when it was added (refresh_location
        # trusts it); files its Location entities lead to are checked against the roots,
        # and every URL is checked again at fetch time. One refresh per location at a
        # time: 409 while another (e.g. the background refresh) runs.
        refresh_or_raise(request.app.state.session_factory, location_id, policy_for(settings))
    return Response(status_code=200)


@router.post("/validate-entity")
def validate_entity(
    request: Request, payload: Any = Body(default=None), _: Principal = ReadPrincipal
) -> Response:
    if not isinstance(payload, dict) or "entity" not in payload:
        raise InputError(
            "body must be {entity: {...}, location: 'url:...'}",
            [ErrorDetail("entity", "required")],
        )
    location = payload.get("location")
    if location is not None and (not isinstance(location, str) or ":" not in location):
        raise InputError(
            "location must be a location ref such as 'url:https://...'",
            [ErrorDetail("location", "expected type:target")],
        )
    problems = validate_entity_document(payload["entity"])
    if not problems:
        return Response(status_code=200)
    errors = [
        {"name": "InputError", "message": f"{p.path}: {p.message}", "path": p.path}
        for p in problems
    ]
    body = {
        "errors": errors,
        "error": {
            "name": "InputError",
            "message": "; ".join(e["message"] for e in errors),
            "details": [p.as_dict() for p in problems],
        },
        "request": {"method": request.method, "url": request.url.path},
        "response": {"statusCode": 400},
    }
    return JSONResponse(body, status_code=400)
