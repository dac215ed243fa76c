"""API tokens over HTTP (admin): create (shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from portal_backend.auth import revocation
from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import Principal, create_token, list_tokens
from portal_backend.db import session_scope
from portal_backend.deps import AdminPrincipal, token_cache

router = APIRouter(prefix="/api/auth/tokens", tags=["auth"])


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scope: str = Field(pattern="^(read|write|admin)$")
    subject: str | None = Field(default=None, description="user entity ref the token acts as")
    owner_group: str | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    acts_as_user: bool = Field(
        default=False,
        description="issued to the user named by subject: carries that user's rights "
        "(groups from the catalog, looked up at each use), within scope",
    )


class TokenView(BaseModel):
    id: str
    name: str
    token_prefix: str
    scope: str
    purpose: str
    subject: str
    owner_group: str | None
    acts_as_user: bool
    service_ref: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiToken) -> TokenView:
        return cls.model_validate(record, from_attributes=True)


@router.post("", status_code=201)
def create(body: TokenCreate, request: Request, principal: Principal = AdminPrincipal) -> dict:
    with session_scope(request.app.state.session_factory) as session:
        created = create_token(
            session,
            name=body.name,
            scope=body.scope,
            subject=body.subject or principal.subject,
            owner_group=body.owner_group,
            created_by=principal.subject,
            expires_in_days=body.expires_in_days,
            acts_as_user=body.acts_as_user,
        )
        view = TokenView.of(created.record).model_dump(mode="json")
    return {**view, "token": created.token}


@router.get("")
def list_all(request: Request, _: Principal = AdminPrincipal) -> dict:
    with session_scope(request.app.state.session_factory) as session:
        return {"items": [TokenView.of(t).model_dump(mode="json") for t in list_tokens(session)]}


@router.delete("/{token_id}", status_code=204)
def revoke(token_id: str, request: Request, _: Principal = AdminPrincipal) -> None:
    revocation.revoke(request.app.state.session_factory, token_cache(request), token_id)
