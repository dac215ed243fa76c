"""Registers the templates shipped in ``scaffolder_templates/`` as catalog Template entities."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import sessionmaker

from portal_backend.db import session_scope
from portal_backend.logging import get_logger
from portal_backend.scaffolder import catalog_port
from portal_backend.settings import Settings

log = get_logger(__name__)


def template_files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.templates_dir).glob("*/template.yaml"))


def register_shipped_templates(settings: Settings, factory: sessionmaker) -> list[str]:
    """Idempotent; a template that fails validation is logged and the others still load."""
    if not catalog_port.catalog_available():
        return []
    registered: list[str] = []
    for path in template_files(settings):
        try:
            with session_scope(factory) as session:
                registered += catalog_port.register_template_files(session, [path])
        except Exception as exc:  # one bad template must not stop the portal
            log.error("scaffolder.template_not_registered", path=str(path), error=str(exc))
    return registered
