"""The catalog's location policy from Settings (for the API, the CLI and the workers)."""

from __future__ import annotations

import os
from pathlib import Path

from catalog.locations import LocationPolicy
from portal_backend.settings import Settings


def location_policy(settings: Settings, *, restrict_files: bool = True) -> LocationPolicy:
    """``restrict_files=False`` only for the server owner's own commands (the CLI)."""
    return LocationPolicy(
        allow_private_urls=settings.allow_private_urls,
        file_roots=tuple(settings.file_roots()) if restrict_files else None,
        max_bytes=settings.location_fetch_max_bytes,
        timeout_s=settings.location_fetch_timeout_s,
        mlflow_auth=dict(settings.mlflow_credentials),
    )


# Folders never worth offering catalog files from (environments, caches, git internals).
_SKIPPED_DIRS = {"node_modules", ".git", ".venv", "venv", "__pycache__", "envs", "workspaces"}


def catalog_file_choices(settings: Settings, limit: int = 50, max_visits: int = 5000) -> list[str]:
    """``catalog-info.yaml`` files under the allowed file roots (a bounded walk), for the
    Register page to offer; a file elsewhere under the roots can still be typed in."""
    found: list[str] = []
    visits = 0
    for root in settings.file_roots():
        for folder, dirs, files in os.walk(root):
            visits += 1 + len(files)
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
            if len(Path(folder).relative_to(root).parts) >= 4:
                dirs[:] = []
            found += [str(Path(folder) / f) for f in sorted(files) if f == "catalog-info.yaml"]
            if len(found) >= limit or visits >= max_visits:
                return found[:limit]
    return found[:limit]
