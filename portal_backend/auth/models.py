"""Credentials and their trail: API tokens (stored as SHA-256 hashes, the plain token shown
once), signed-in sessions, and the audit log of every write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    # sha256 hex of the token; tokens are 256-bit random, so a fast hash is enough.
    token_hash: str = Field(max_length=64, unique=True, index=True)
    # First characters of the token, to recognise it in listings without revealing it.
    token_prefix: str = Field(max_length=16)
    scope: str = Field(max_length=16)  # read | write | admin
    # "api" for people and automation; "ingest" for a RAG service's usage push (write-only).
    purpose: str = Field(default="api", max_length=16)
    subject: str = Field(max_length=255)  # entity ref of the user, e.g. user:default/alice
    owner_group: str | None = Field(default=None, max_length=255)
    # Issued to a user: carries that user's rights (groups from the catalog, admin through
    # the admin group), looked up at each use, within the token's scope.
    acts_as_user: bool = Field(default=False)
    service_ref: str | None = Field(default=None, max_length=255, index=True)
    created_by: str | None = Field(default=None, max_length=255)
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class UserSession(SQLModel, table=True):
    """A person signed in through the identity provider. The browser holds the id in the
    signed session cookie; signing out (or expiry) ends it here, so a copied cookie stops
    working too."""

    __tablename__ = "user_sessions"

    id: str = Field(primary_key=True, max_length=36)
    subject: str = Field(max_length=255, index=True)  # user:default/alice (or the guest)
    # Groups named by the ID token's groups claim (when configured), added to memberOf.
    claim_groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    issuer: str = Field(max_length=500)
    external_subject: str = Field(max_length=255)  # the ID token's `sub`
    guest: bool = Field(default=False)
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None


class AuditEvent(SQLModel, table=True):
    """One write: who (subject, groups), through what (token or session), what (the
    operation and its target), when, and how it ended (HTTP status)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str = Field(max_length=255, index=True)
    # "token:<id>", "session:<id>", "bootstrap-token" (never the secret itself).
    credential: str = Field(max_length=80)
    action: str = Field(max_length=300)  # e.g. "DELETE /api/rag-services/{namespace}/{name}"
    target: str = Field(default="", max_length=500)  # e.g. "namespace=default name=docs-qa"
    status: int
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
