"""Who am I, my own API tokens (carrying my rights), and the audit log (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from catalog.errors import NotAllowedError, NotFoundError
from portal_backend.auth import audit, revocation
from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import SCOPES, Principal, create_token, list_tokens
from portal_backend.db import session_scope
from portal_backend.deps import AdminPrincipal, ReadPrincipal, token_cache
from portal_backend.openapi import MAX_INT

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _me(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "groups": list(principal.groups),
        "scope": principal.scope,
        "credential": principal.credential,
        "ownerRefs": list(principal.owner_refs),
        "unrestricted": principal.unrestricted,
    }


@router.get("/me")
def me(principal: Principal = ReadPrincipal) -> dict[str, Any]:
    """The caller as the portal sees it: user, groups (from the catalog), scope."""
    return _me(principal)


class MyTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scope: str = Field(default="write", pattern="^(read|write|admin)$")
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


def _user_principal(principal: Principal) -> Principal:
    if (
        not principal.subject.startswith("user:")
        or principal.is_anonymous
        or (principal.token_id is None and principal.session_id is None)
    ):
        raise NotAllowedError("only a signed-in user (or a token issued to one) has own tokens")
    return principal


def _token_view(record: ApiToken) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "token_prefix": record.token_prefix,
        "scope": record.scope,
        "subject": record.subject,
        "acts_as_user": record.acts_as_user,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
    }


@router.post("/me/tokens", status_code=201)
def create_my_token(
    body: MyTokenCreate, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    """A token for my automation, carrying my rights (never more than I have now)."""
    user = _user_principal(principal)
    if SCOPES.index(body.scope) > SCOPES.index(user.scope):
        raise NotAllowedError(f"you have scope '{user.scope}'; a token of yours cannot have more")
    with session_scope(request.app.state.session_factory) as session:
        created = create_token(
            session,
            name=body.name,
            scope=body.scope,
            subject=user.subject,
            created_by=user.subject,
            expires_in_days=body.expires_in_days,
            acts_as_user=True,
        )
        return {**_token_view(created.record), "token": created.token}


@router.get("/me/tokens")
def list_my_tokens(request: Request, principal: Principal = ReadPrincipal) -> dict[str, Any]:
    user = _user_principal(principal)
    with session_scope(request.app.state.session_factory) as session:
        mine = [t for t in list_tokens(session) if t.subject == user.subject and t.acts_as_user]
        return {"items": [_token_view(t) for t in mine]}


@router.delete("/me/tokens/{token_id}", status_code=204)
def revoke_my_token(token_id: str, request: Request, principal: Principal = ReadPrincipal) -> None:
    user = _user_principal(principal)
    with session_scope(request.app.state.session_factory) as session:
        record = session.get(ApiToken, token_id)
        if record is None or record.subject != user.subject or not record.acts_as_user:
            raise NotFoundError(f"you have no token with id {token_id}")
    revocation.revoke(request.app.state.session_factory, token_cache(request), token_id)


@router.get("/audit")
def audit_log(
    request: Request,
    limit: int = Query(100, ge=1, le=audit.MAX_PAGE),
    before: int | None = Query(
        None, ge=0, le=MAX_INT, description="an event id: the page before it"
    ),
    actor: str | None = Query(None, description="user ref, e.g. user:default/alice"),
    action: str | None = Query(None, description="substring of the action"),
    _: Principal = AdminPrincipal,
) -> dict[str, Any]:
    """Every write (who, through which credential, what, when, status), newest first."""
    with session_scope(request.app.state.session_factory) as session:
        return audit.list_events(session, limit=limit, before=before, actor=actor, action=action)
