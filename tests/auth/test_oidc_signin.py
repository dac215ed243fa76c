"""Sign-in through a real OpenID provider: who the portal resolves a person to, and every
way the provider's answer can be wrong (audience, expiry, state), on both databases."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from portal_backend.auth.models import UserSession
from portal_backend.db import session_scope
from tests.auth.conftest import PortalFactory, sign_in, with_query
from tests.conftest import BOOTSTRAP_TOKEN


def _sessions(session_factory: Any) -> int:
    with session_scope(session_factory) as session:
        return int(session.scalar(select(func.count()).select_from(UserSession)) or 0)


def test_a_user_in_two_groups_signs_in_with_both(oidc_portal: PortalFactory) -> None:
    portal = oidc_portal()
    signed = sign_in(portal, "bob", next_path="/api/auth/me?from=signin")
    # Back where the sign-in started from (here: who am I), signed in.
    assert signed.response.status_code == 200
    assert str(signed.response.url) == portal.url + "/api/auth/me?from=signin"
    me = signed.response.json()
    assert me["subject"] == "user:default/bob"
    assert me["groups"] == ["group:default/team-a", "group:default/team-b"]
    assert me["scope"] == "write"
    assert me["credential"].startswith("session:")
    # Nothing of the provider's tokens is kept where the API could hand it out.
    assert "id_token" not in str(me)


def test_groups_claim_and_admin_group(oidc_portal: PortalFactory) -> None:
    portal = oidc_portal(oidc_groups_claim="groups")
    alice = sign_in(portal, "alice").client.get(portal.url + "/api/auth/me").json()
    # memberOf from the catalog, then what the provider's groups claim names.
    assert alice["groups"] == ["group:default/team-a", "group:default/from-idp"]
    assert alice["scope"] == "write"
    dave = sign_in(portal, "dave").client
    assert dave.get(portal.url + "/api/auth/me").json()["scope"] == "admin"
    assert dave.get(portal.url + "/api/auth/audit").status_code == 200
    assert sign_in(portal, "bob").client.get(portal.url + "/api/auth/audit").status_code == 403


def test_no_user_entity_is_refused_with_a_clear_page(
    oidc_portal: PortalFactory, session_factory: Any
) -> None:
    portal = oidc_portal()
    signed = sign_in(portal, "carol")
    assert signed.response.status_code == 403
    assert "You are not in the portal's catalog" in signed.response.text
    assert "carol@example.com" in signed.response.text
    assert "spec.profile.email" in signed.response.text
    assert signed.client.get(portal.url + "/api/auth/me").status_code == 401
    assert _sessions(session_factory) == 0


def test_no_user_entity_is_a_read_only_guest_when_enabled(oidc_portal: PortalFactory) -> None:
    portal = oidc_portal(oidc_guest=True)
    guest = sign_in(portal, "carol").client
    me = guest.get(portal.url + "/api/auth/me").json()
    assert (me["subject"], me["scope"], me["groups"]) == ("user:default/guest", "read", [])
    budget = guest.put(
        portal.url + "/api/sla/budgets/component/default/svc-a", json={"monthlyUsd": 5}
    )
    assert budget.status_code == 403


def test_the_user_claim_and_entity_field_are_configurable(oidc_portal: PortalFactory) -> None:
    # The provider's `sub` (the login) matched against the User entity's name.
    portal = oidc_portal(oidc_user_claim="sub", oidc_user_entity_field="metadata.name")
    me = sign_in(portal, "bob").client.get(portal.url + "/api/auth/me").json()
    assert me["subject"] == "user:default/bob"


def test_an_id_token_for_another_audience_is_refused(
    oidc_portal: PortalFactory, session_factory: Any
) -> None:
    portal = oidc_portal(client_id="portal-wrong-aud")
    signed = sign_in(portal, "bob")
    assert signed.response.status_code == 401
    assert "issued for another client" in signed.response.text
    assert signed.client.get(portal.url + "/api/auth/me").status_code == 401
    assert _sessions(session_factory) == 0


def test_an_expired_id_token_is_refused(oidc_portal: PortalFactory, session_factory: Any) -> None:
    portal = oidc_portal(client_id="portal-expired")
    signed = sign_in(portal, "bob")
    assert signed.response.status_code == 401
    assert "expired" in signed.response.text
    assert signed.client.get(portal.url + "/api/auth/me").status_code == 401
    assert _sessions(session_factory) == 0


def test_a_tampered_state_is_refused_before_the_code_is_used(
    oidc_portal: PortalFactory, session_factory: Any
) -> None:
    portal = oidc_portal()
    signed = sign_in(portal, "bob", tamper=lambda url: with_query(url, state="forged"))
    assert signed.response.status_code == 401
    assert "state mismatch" in signed.response.text
    assert signed.client.get(portal.url + "/api/auth/me").status_code == 401
    assert _sessions(session_factory) == 0


def test_logout_ends_the_session_here_and_at_the_provider(
    oidc_portal: PortalFactory, session_factory: Any
) -> None:
    portal = oidc_portal()
    signed = sign_in(portal, "bob")
    cookie = signed.session_cookie
    assert cookie
    answer = signed.client.post(portal.url + "/logout")
    # RP-initiated logout: off to the provider's end-session endpoint, with the ID token
    # as hint and the portal's sign-in page to come back to.
    assert answer.status_code == 303
    location = httpx.URL(answer.headers["location"])
    assert str(location).startswith(portal.settings.oidc_issuer + "/session/end")
    assert location.params["id_token_hint"].count(".") == 2
    assert location.params["post_logout_redirect_uri"] == portal.url + "/login?signed_out=1"
    # A copy of the old cookie no longer signs anyone in: the session ended server-side.
    with httpx.Client(cookies={"ragportal_session": cookie}) as stolen:
        assert stolen.get(portal.url + "/api/auth/me").status_code == 401
        page = stolen.get(portal.url + "/")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # The admin sees both ends in the audit log.
    with portal.client(BOOTSTRAP_TOKEN) as admin:
        actions = [e["action"] for e in admin.get("/api/auth/audit").json()["items"]]
    assert actions[:2] == ["auth.signout", "auth.signin"]


def test_an_answer_naming_another_issuer_is_refused(
    oidc_portal: PortalFactory, session_factory: Any
) -> None:
    # The provider names itself in the answer (RFC 9207); another name is a mix-up.
    portal = oidc_portal()
    signed = sign_in(portal, "bob", tamper=lambda url: with_query(url, iss="https://evil.test"))
    assert signed.response.status_code == 401
    assert "not the configured issuer" in signed.response.text
    assert _sessions(session_factory) == 0
