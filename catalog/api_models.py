"""Request models of the catalog API that other adapters share (the MCP server's tools
take the same inputs), so the two cannot drift: the HTTP route and the tool are both
generated from these classes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ENTITY_NAME = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"

# The largest page size or offset taken: what both databases bind (a larger one was a
# 500 on SQLite, an OverflowError binding it; found by schemathesis, issue 22).
MAX_INT = 2**31 - 1


class EntityQueryParams(BaseModel):
    """``GET /api/catalog/entities/by-query``'s query parameters (Backstage's names)."""

    model_config = ConfigDict(extra="ignore")

    filter: list[str] = Field(
        default_factory=list,
        description=(
            "Backstage filters: conditions in one filter are ANDed (kind=component,"
            "spec.type=rag-service), several filters are ORed; case-insensitive"
        ),
    )
    fullTextFilterTerm: str | None = Field(  # noqa: N815 - Backstage's parameter name
        default=None, description="case-insensitive substring searched for in the text fields"
    )
    fullTextFilterFields: list[str] = Field(  # noqa: N815
        default_factory=list,
        description="fields the term is searched in (default name, title, description)",
    )
    orderField: list[str] = Field(  # noqa: N815
        default_factory=list,
        description="'field,asc' or 'field,desc'; the first is the most significant",
    )
    fields: list[str] = Field(
        default_factory=list, description="only these dotted paths of each entity"
    )
    limit: int | None = Field(
        default=None, ge=0, le=MAX_INT, description="page size (default 20, max 1000)"
    )
    offset: int | None = Field(
        default=None, ge=0, le=MAX_INT, description="items to skip on the first page"
    )
    cursor: str | None = Field(
        default=None, description="pageInfo.nextCursor or prevCursor of an earlier page"
    )
    totalItems: Literal["include", "exclude"] | None = Field(  # noqa: N815
        default=None, description="count the matches on the first page (default include)"
    )


class EntityName(BaseModel):
    """An entity by name: ``GET /api/catalog/entities/by-name/{kind}/{namespace}/{name}``."""

    kind: str = Field(min_length=1, max_length=63, description="e.g. component, group, template")
    namespace: str = Field(default="default", min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=63, pattern=ENTITY_NAME)
