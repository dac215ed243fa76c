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
    # None: not on a cluster (planned only, or on the local runtime: see ``target``).
    cluster: str | None = Field(default=None, max_length=100)
    # Where it runs: "kubernetes", "local" (supervised processes on the portal's machine)
    # or "plan" (nothing applied). None on rows from before the local runtime: derived
    # from ``cluster``.
    target: str | None = Field(default=None, max_length=16)
    # Where the service answers (the local runtime's API address; a cluster's is internal).
    endpoint: str | None = Field(default=None, max_length=255)
    # What was deployed: the published repository's contents URL and its commit.
    repo_contents_url: str | None = None
    commit: str | None = Field(default=None, max_length=64)
    # Who is changing it now (a provisioning step), until when: the local runtime's
    # supervisor leaves a leased service alone.
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None
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
