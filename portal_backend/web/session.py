"""The secret that signs the web UI's session cookie."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from portal_backend.settings import Settings

SECRET_FILE = "session_secret"


def resolve_session_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept in the data folder.

    Persisting it means sessions survive a restart and every process serving the same
    data folder signs cookies alike.
    """
    if settings.session_secret:
        return settings.session_secret
    path: Path = settings.data_dir / SECRET_FILE
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    settings.ensure_dirs()
    value = secrets.token_urlsafe(48)
    # Create with owner-only permissions; O_EXCL makes concurrent starters agree on one value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
