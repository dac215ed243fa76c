"""Request models of the SLA/cost API, shared by its HTTP routes and the MCP server."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServiceReportQuery(BaseModel):
    """``GET /api/sla/services/{kind}/{namespace}/{name}``' query."""

    window: str = Field(default="24h", description="1h, 24h, 7d or 30d")


class CostQuery(BaseModel):
    """``GET /api/sla/costs``' query."""

    groupBy: str = Field(default="service", description="service or owner")  # noqa: N815
    window: str = Field(default="30d", description="7d, 30d or 90d")
