"""Page routes, one module per area, mounted at `/`."""

from __future__ import annotations

from fastapi import APIRouter

from portal_backend.web.routes import (
    admin,
    audit,
    auth,
    catalog,
    create,
    entity,
    home,
    register,
    repos,
    scorecards,
    techdocs,
    upgrades,
)

router = APIRouter(include_in_schema=False)
# upgrades before entity: its /catalog/.../template-upgrade is not an entity tab.
for module in (
    auth,
    home,
    upgrades,
    catalog,
    register,
    entity,
    create,
    repos,
    techdocs,
    scorecards,
    admin,
    audit,
):
    router.include_router(module.router)
