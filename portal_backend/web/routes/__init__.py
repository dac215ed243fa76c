"""Page routes, one module per area, mounted at `/`."""

from __future__ import annotations

from fastapi import APIRouter

from portal_backend.web.routes import admin, audit, auth, catalog, create, home, upgrades

router = APIRouter(include_in_schema=False)
for module in (auth, home, upgrades, catalog, create, admin, audit):
    router.include_router(module.router)
