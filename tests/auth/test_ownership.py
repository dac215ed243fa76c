"""Ownership from the catalog: write actions on a service belong to its owner group's
members and admins, whatever the credential (a signed-in session, a token issued to the
user); every write lands in the audit log. On both databases."""

from __future__ import annotations

from typing import Any

import httpx

from catalog.service import CatalogService
from portal_backend.db import session_scope
from tests.auth.conftest import PortalFactory, sign_in, user
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer


def _budget(client: httpx.Client, portal: LiveServer, service: str, usd: float) -> int:
    url = f"{portal.url}/api/sla/budgets/component/default/{service}"
    return client.put(url, json={"monthlyUsd": usd}).status_code


def test_members_of_the_owner_group_may_change_its_services_only(
    oidc_portal: PortalFactory,
) -> None:
    portal = oidc_portal()
    bob = sign_in(portal, "bob").client  # team-a and team-b
    alice = sign_in(portal, "alice").client  # team-a
    assert _budget(bob, portal, "svc-a", 100) == 200
    assert _budget(bob, portal, "svc-b", 200) == 200
    assert _budget(alice, portal, "svc-b", 300) == 403
    refused = bob.put(
        f"{portal.url}/api/sla/budgets/component/default/svc-c", json={"monthlyUsd": 1}
    )
    assert refused.status_code == 403
    assert "group:default/team-c" in refused.json()["error"]["message"]
    # A group's budget is the platform's to set; an admin (the admin group) may.
    assert (
        bob.put(
            f"{portal.url}/api/sla/budgets/group/default/team-a", json={"monthlyUsd": 1}
        ).status_code
        == 403
    )
    dave = sign_in(portal, "dave").client
    assert _budget(dave, portal, "svc-c", 400) == 200
    # Tearing down: the owner check comes before anything is touched.
    teardown = bob.delete(f"{portal.url}/api/rag/services/default/svc-c")
    assert teardown.status_code == 403
    with portal.client(BOOTSTRAP_TOKEN) as admin:
        assert admin.get("/api/catalog/entities/by-name/component/default/svc-c").status_code == 200
        budgets = {b["ref"]: b["monthlyUsd"] for b in admin.get("/api/sla/budgets").json()["items"]}
    assert budgets["component:default/svc-a"] == 100
    assert budgets["component:default/svc-b"] == 200
    assert budgets["component:default/svc-c"] == 400


def test_catalog_writes_follow_ownership(oidc_portal: PortalFactory) -> None:
    portal = oidc_portal()
    bob = sign_in(portal, "bob").client
    with portal.client(BOOTSTRAP_TOKEN) as admin:
        uid_c = admin.get("/api/catalog/entities/by-name/component/default/svc-c").json()
        uid_b = admin.get("/api/catalog/entities/by-name/component/default/svc-b").json()
    refused = bob.delete(f"{portal.url}/api/catalog/entities/by-uid/{uid_c['metadata']['uid']}")
    assert refused.status_code == 403
    assert (
        bob.delete(
            f"{portal.url}/api/catalog/entities/by-uid/{uid_b['metadata']['uid']}"
        ).status_code
        == 204
    )


def test_a_token_issued_to_a_user_carries_that_users_rights(
    oidc_portal: PortalFactory, session_factory: Any
) -> None:
    portal = oidc_portal()
    bob = sign_in(portal, "bob").client
    created = bob.post(f"{portal.url}/api/auth/me/tokens", json={"name": "bob's CI"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    # More than bob has is refused.
    assert (
        bob.post(
            f"{portal.url}/api/auth/me/tokens", json={"name": "x", "scope": "admin"}
        ).status_code
        == 403
    )
    with portal.client(token) as ci:
        me = ci.get("/api/auth/me").json()
        assert me["subject"] == "user:default/bob"
        assert me["groups"] == ["group:default/team-a", "group:default/team-b"]
        assert me["credential"] == f"token:{created.json()['id']}"
        assert _budget(ci, portal, "svc-b", 10) == 200
        assert _budget(ci, portal, "svc-c", 10) == 403
        # Rights are the user's as the catalog says now: bob leaves team-b.
        with session_scope(session_factory) as session:
            CatalogService(session).upsert_entities([user("bob", "bob@example.com", "team-a")])
        assert _budget(ci, portal, "svc-b", 20) == 403
        assert _budget(ci, portal, "svc-a", 20) == 200
        # Removed from the catalog: the token stops working altogether.
        with session_scope(session_factory) as session:
            CatalogService(session).delete_by_ref("user:default/bob")
        assert ci.get("/api/auth/me").status_code == 401


def test_admins_issue_user_tokens_only_for_users_in_the_catalog(
    oidc_portal: PortalFactory,
) -> None:
    portal = oidc_portal()
    with portal.client(BOOTSTRAP_TOKEN) as admin:
        missing = admin.post(
            "/api/auth/tokens",
            json={
                "name": "x",
                "scope": "write",
                "subject": "user:default/carol",
                "acts_as_user": True,
            },
        )
        assert missing.status_code == 400
        assert "no User entity user:default/carol" in missing.json()["error"]["message"]
        issued = admin.post(
            "/api/auth/tokens",
            json={"name": "alice", "scope": "admin", "subject": "alice", "acts_as_user": True},
        )
        assert issued.status_code == 201
        assert issued.json()["subject"] == "user:default/alice"
    # An admin-scope token for a user who is not an admin works as that user: write.
    with portal.client(issued.json()["token"]) as alice:
        assert alice.get("/api/auth/me").json()["scope"] == "write"
        assert alice.get("/api/auth/tokens").status_code == 403


def test_every_write_is_in_the_audit_log(oidc_portal: PortalFactory) -> None:
    portal = oidc_portal()
    bob = sign_in(portal, "bob").client
    session_credential = bob.get(f"{portal.url}/api/auth/me").json()["credential"]
    assert _budget(bob, portal, "svc-a", 50) == 200
    assert _budget(bob, portal, "svc-c", 50) == 403
    token = bob.post(f"{portal.url}/api/auth/me/tokens", json={"name": "ci"}).json()
    with portal.client(token["token"]) as ci:
        assert _budget(ci, portal, "svc-b", 60) == 200
        assert ci.get("/api/auth/audit").status_code == 403  # admins only
    with portal.client(BOOTSTRAP_TOKEN) as admin:
        found = admin.get("/api/auth/audit", params={"actor": "user:default/bob"}).json()
        reads = admin.get("/api/auth/audit", params={"action": "GET /"}).json()
    events = found["items"]  # newest first
    assert reads["items"] == []  # reads are not writes
    budget_action = "PUT /api/sla/budgets/{kind}/{namespace}/{name}"
    assert [(e["action"], e["status"], e["credential"]) for e in events] == [
        (budget_action, 200, f"token:{token['id']}"),
        ("POST /api/auth/me/tokens", 201, session_credential),
        (budget_action, 403, session_credential),
        (budget_action, 200, session_credential),
        ("auth.signin", 200, session_credential),
    ]
    assert events[0]["target"] == "kind=component namespace=default name=svc-b"
    assert events[0]["details"]["groups"] == ["group:default/team-a", "group:default/team-b"]
    # The request body (a token name here; a secret's value elsewhere) is never recorded.
    assert "ci" not in str(events[1]["details"])
    # Paging back from an event id.
    older = admin_page(portal, before=events[1]["id"])
    assert [e["id"] for e in older][:3] == [e["id"] for e in events[2:5]]


def admin_page(portal: LiveServer, **params: Any) -> list[dict[str, Any]]:
    with portal.client(BOOTSTRAP_TOKEN) as admin:
        answer = admin.get("/api/auth/audit", params={"actor": "user:default/bob", **params})
        return list(answer.json()["items"])
