"""The catalog's location policy from Settings (for the API, the CLI and the workers)."""

from __future__ import annotations

from catalog.locations import LocationPolicy
from portal_backend.settings import Settings


def location_policy(settings: Settings, *, restrict_files: bool = True) -> LocationPolicy:
    """``restrict_files=False`` only for the server owner's own commands (the CLI)."""
    return LocationPolicy(
        allow_private_urls=settings.allow_private_urls,
        file_roots=tuple(settings.file_roots()) if restrict_files else None,
        max_bytes=settings.location_fetch_max_bytes,
        timeout_s=settings.location_fetch_timeout_s,
    )
