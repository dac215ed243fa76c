"""The database session factory a worker process uses for every task module."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import make_engine, make_session_factory
from portal_backend.settings import Settings

# Keyed by process and database: a forked worker child must not reuse its parent's
# connections, and one engine (one pool) per process serves all task modules.
_factories: dict[tuple[int, str], sessionmaker[Session]] = {}


def process_session_factory(settings: Settings) -> sessionmaker[Session]:
    key = (os.getpid(), settings.database_url)
    if key not in _factories:
        _factories[key] = make_session_factory(make_engine(settings.database_url))
    return _factories[key]
