"""The scaffolder's door into the catalog (``catalog.service.CatalogService``).

One place adapts to the catalog's Python API, so the engine and actions stay small.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.service import CatalogService


def _service(session: Any) -> CatalogService:
    from catalog.service import CatalogService

    return CatalogService(session)


def catalog_available() -> bool:
    try:
        import catalog.service  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def get_entity(session: Any, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    if not catalog_available():
        return None
    return _service(session).get_by_name(kind, namespace, name)


def get_by_ref(session: Any, ref: str) -> dict[str, Any] | None:
    if not catalog_available():
        return None
    return _service(session).get_by_ref(ref)


def refs_of_kind(session: Any, kind: str) -> list[str]:
    """Refs of every entity of ``kind`` (sorted), e.g. the Groups an owner may be."""
    if not catalog_available():
        return []
    return _service(session).query_refs({"kind": kind})


def query_refs(session: Any, conditions: dict[str, str]) -> list[str]:
    """Refs of the entities matching every condition (the catalog API's filter keys)."""
    if not catalog_available():
        return []
    return _service(session).query_refs(conditions)


def get_by_refs(session: Any, refs: list[str]) -> list[dict[str, Any]]:
    if not catalog_available() or not refs:
        return []
    return [e for e in _service(session).get_by_refs(refs) if e]


def upsert(session: Any, entities: list[dict[str, Any]], location_key: str) -> list[dict[str, Any]]:
    return _service(session).upsert_entities(entities, location_key=location_key)


def register_template_files(session: Any, paths: list[Path]) -> list[str]:
    """Add each template.yaml as a ``file`` location (refreshing one that exists)."""
    service = _service(session)
    registered = []
    for path in paths:
        target = str(path.resolve())
        existing = service.find_location("file", target)
        if existing is None:
            service.add_location("file", target, managed_by="scaffolder")
        else:
            # Refresh, so edits to the file show up after a restart.
            service.refresh_location(existing["id"])
        registered.append(target)
    return registered


def add_url_location(session: Any, url: str, settings: Any) -> list[dict[str, Any]]:
    """Let the catalog read an http(s) catalog-info.yaml itself (its fetch rules apply);
    a location registered before (a re-run of the step) is refreshed instead."""
    from catalog.locations import LocationPolicy
    from catalog.service import CatalogService

    policy = LocationPolicy(
        allow_private_urls=settings.allow_private_urls,
        max_bytes=settings.location_fetch_max_bytes,
        timeout_s=settings.location_fetch_timeout_s,
    )
    service = CatalogService(session, policy=policy)
    existing = service.find_location("url", url)
    if existing is not None:
        refreshed = service.refresh_location(existing["id"])
        return [e for e in (service.get_by_ref(r) for r in refreshed["entities"]) if e]
    result = service.add_location("url", url)
    return list(result.get("entities") or [])


_engines: dict[str, Any] = {}


def factory_for(settings: Any) -> Any:
    """Sessions on the settings' database, for checks that run outside a request."""
    from portal_backend.db import make_engine, make_session_factory

    engine = _engines.get(settings.database_url)
    if engine is None:
        engine = _engines[settings.database_url] = make_engine(settings.database_url)
    return make_session_factory(engine)


def entity_ref(entity: dict[str, Any]) -> str:
    meta = entity.get("metadata") or {}
    return (
        f"{str(entity.get('kind', '')).lower()}:"
        f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"
    )
