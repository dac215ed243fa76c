"""Imports every table module so ``SQLModel.metadata`` describes the whole schema.

Alembic's env and the models/migrations agreement test both rely on this list.
"""

from sqlmodel import SQLModel

import catalog.tables  # noqa: F401
import portal_backend.auth.models  # noqa: F401
import portal_backend.provisioning.local.tables  # noqa: F401
import portal_backend.provisioning.models  # noqa: F401
import portal_backend.scaffolder.tables  # noqa: F401
import portal_backend.scaffolder.upgrade_tables  # noqa: F401
import portal_backend.scorecards.tables  # noqa: F401
import portal_backend.sla.tables  # noqa: F401

metadata = SQLModel.metadata
