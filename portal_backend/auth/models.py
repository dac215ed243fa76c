"""API tokens, stored as SHA-256 hashes: the plain token is shown once, at creation."""

from __future__ import annotations

from datetime import datetime

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
    service_ref: str | None = Field(default=None, max_length=255, index=True)
    created_by: str | None = Field(default=None, max_length=255)
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
