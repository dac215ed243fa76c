"""Provisioning tables: what each service should look like in its cluster, and secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

_JSON = sa.JSON()


class ProvisionedService(SQLModel, table=True):
    """One RAG service the portal deployed (or planned): the reconciler's worklist."""

    __tablename__ = "provisioned_services"

    service: str = Field(primary_key=True, max_length=63)
    namespace: str = Field(max_length=63)
    # None: no cluster configured, the bundle was only planned.
    cluster: str | None = Field(default=None, max_length=100)
    environment: str | None = Field(default=None, max_length=63)
    entity_ref: str | None = Field(default=None, max_length=255)
    # The rendered bundle as applied, Secret values stripped: the reconciler's desired state.
    desired: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(_JSON))
    state: str = Field(max_length=32)
    detail: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(_JSON))
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime


class PortalSecret(SQLModel, table=True):
    """A secret value, Fernet-encrypted; scope is ``global`` or a service name."""

    __tablename__ = "portal_secrets"
    __table_args__ = (sa.UniqueConstraint("scope", "name", name="uq_portal_secrets_scope_name"),)

    id: str = Field(primary_key=True, max_length=36)
    scope: str = Field(max_length=100, index=True)
    name: str = Field(max_length=100)
    ciphertext: str
    updated_at: datetime
