"""Registers the templates shipped in ``scaffolder_templates/`` as catalog Template entities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ErrorDetail, InputError
from portal_backend.db import session_scope
from portal_backend.logging import get_logger
from portal_backend.scaffolder import catalog_port, version_store
from portal_backend.scaffolder.templates import (
    Template,
    find_template,
    load_template_file,
    template_ref,
)
from portal_backend.settings import Settings

log = get_logger(__name__)


def template_files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.templates_dir).glob("*/template.yaml"))


def folder_template(path: Path) -> Template:
    """The template of a ``template.yaml`` in templates_dir (trusted: its hooks may run)."""
    entity = load_template_file(path)
    meta = entity.get("metadata") or {}
    ref = template_ref(meta.get("namespace") or "default", str(meta.get("name") or ""))
    return Template(ref, entity, path.parent, trusted=True)


def register_template_folder(factory: sessionmaker[Session], path: Path) -> dict[str, Any]:
    """Record the folder's version (and shipped history) first, then add or refresh its
    catalog location. A folder that changed under a recorded version is refused
    (TemplateVersionConflict, 409) before the catalog sees the change."""
    template = folder_template(path)
    version = version_store.record_template(factory, template)
    with session_scope(factory) as session:
        catalog_port.register_template_files(session, [path])
    return {"templateRef": template.ref, "version": version, "path": str(path.resolve())}


def register_shipped_templates(settings: Settings, factory: sessionmaker[Session]) -> list[str]:
    """Idempotent; a template that fails validation (or changed without a new version) is
    logged and the others still load."""
    if not catalog_port.catalog_available():
        return []
    registered: list[str] = []
    for path in template_files(settings):
        try:
            registered.append(register_template_folder(factory, path)["path"])
        except Exception as exc:  # one bad template must not stop the portal
            log.error("scaffolder.template_not_registered", path=str(path), error=str(exc))
    return registered


def register_template_version(
    settings: Settings, factory: sessionmaker[Session], ref: str
) -> dict[str, Any]:
    """Record a template's folder as the spec.version its template.yaml names (the admin
    API's "register"), then refresh its catalog entity."""
    with session_scope(factory) as session:
        template = find_template(settings, session, ref)
    path = template.directory / "template.yaml" if template.directory else None
    if path is None or not path.is_file():
        raise InputError(
            f"{ref} is not stored in a folder: only folder templates have versions",
            [ErrorDetail("templateRef", "register a template.yaml file location")],
        )
    with session_scope(factory) as session:
        before = {v.version for v in version_store.list_versions(session, template.ref)}
    version = version_store.record_template(factory, template)
    if version is None:
        raise InputError(
            f"{ref} has no spec.version: give its template.yaml a semver spec.version",
            [ErrorDetail("spec.version", "missing")],
        )
    with session_scope(factory) as session:  # the catalog follows once the check passed
        catalog_port.register_template_files(session, [path])
        recorded = version_store.get_version(session, template.ref, version)
    assert recorded is not None
    return {
        "templateRef": template.ref,
        **version_store.describe(recorded),
        "created": version not in before,
    }
