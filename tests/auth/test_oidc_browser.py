"""Sign-in through the browser (Chromium driven by Playwright) against the real OpenID
provider: the login and consent pages, the portal's pages for a user in two groups
(my services, what they may change), sign-out at both ends, and the audit page.

The pages are tested on PostgreSQL only (one browser, one backend), as tests/ui does; the
flows under them run on both databases in test_oidc_signin.py and test_ownership.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from portal_backend.db import make_engine, make_session_factory, upgrade_database
from tests.auth.conftest import ADMIN_GROUP, OidcProvider, people, services
from tests.conftest import LiveServer, free_port, make_settings, start_live_server, truncate_all
from tests.ui.conftest import snap
from tests.ui.seed import seed


@pytest.fixture
def portal(
    tmp_path_factory: pytest.TempPathFactory, postgres_schema: str, oidc_provider: OidcProvider
) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(
        "postgresql",
        tmp_path_factory.mktemp("oidc-browser"),
        postgres_schema,
        base_url=f"http://127.0.0.1:{port}",
        oidc_issuer=oidc_provider.issuer,
        oidc_client_id="portal",
        oidc_client_secret="portal-secret",
        admin_group=ADMIN_GROUP,
    )
    upgrade_database(settings)
    truncate_all(settings)
    engine = make_engine(settings.database_url)
    seed(make_session_factory(engine), people() + services())
    engine.dispose()
    live, server, thread = start_live_server(settings, port=port)
    yield live
    _stop(server, thread)


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


def _page(browser: Browser, portal: LiveServer) -> Page:
    context = browser.new_context(base_url=portal.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    return context.new_page()


def _sign_in(page: Page, portal: LiveServer, login: str, start: str = "/") -> None:
    page.goto(start)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_role("link", name=re.compile(r"Sign in with 127\.0\.0\.1")).click()
    # The provider's own pages: its login form, then its consent page.
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(portal.url + start)


def test_sign_in_my_services_ownership_and_sign_out(
    browser: Browser,  # noqa: F811
    portal: LiveServer,
) -> None:
    page = _page(browser, portal)
    _sign_in(page, portal, "bob")
    expect(page.locator("#who")).to_contain_text("bob")
    expect(page.locator("#who")).to_contain_text("team-a")
    expect(page.locator("#who")).to_contain_text("team-b")
    # My services: what bob's two groups own, not team-c's.
    mine = page.get_by_role("region", name="My services")
    expect(mine.get_by_role("link", name="svc-a")).to_be_visible()
    expect(mine.get_by_role("link", name="svc-b")).to_be_visible()
    expect(mine.get_by_role("link", name="svc-c")).to_have_count(0)
    snap(page, "oidc-home")

    # Pages offer write actions only where bob may take them...
    page.goto("/catalog/default/component/svc-b")
    expect(page.get_by_role("link", name=re.compile("Delete service"))).to_be_visible()
    page.goto("/catalog/default/component/svc-c")
    expect(page.get_by_role("heading", name=re.compile("svc-c")).first).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Delete service"))).to_have_count(0)
    # ...and refuse a forged form post all the same.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value") or ""
    forged = page.request.post(
        "/catalog/default/component/svc-c/delete", form={"csrf": csrf, "confirm_name": "svc-c"}
    )
    assert forged.status == 403

    # Sign out: the portal ends its session, then the provider asks to end its own.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(re.compile(r"/login\?signed_out=1"))
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    snap(page, "oidc-signed-out")
    page.context.close()

    # An admin (member of the admin group) reads it all on the audit page.
    admin = _page(browser, portal)
    _sign_in(admin, portal, "dave")
    admin.get_by_role("link", name="Audit").click()
    table = admin.locator("#audit-events")
    rows = table.get_by_role("row")
    expect(rows.filter(has_text="auth.signout").filter(has_text="user:default/bob")).to_have_count(
        1
    )
    refused = rows.filter(has_text="POST /catalog/{namespace}/{kind}/{name}/delete")
    expect(refused).to_contain_text("403")
    expect(refused).to_contain_text("namespace=default kind=component name=svc-c")
    admin.get_by_label("Who (user ref)").fill("user:default/dave")
    admin.get_by_role("button", name="Filter").click()
    expect(table).not_to_contain_text("user:default/bob")
    snap(admin, "oidc-audit")

    # The admin issues bob a token for his automation: it carries bob's rights.
    admin.goto("/admin")
    admin.get_by_label("Name", exact=True).fill("bob's deploy job")
    admin.get_by_label("Scope").select_option("write")
    admin.get_by_label("Acts as (user ref)").fill("user:default/bob")
    admin.get_by_label("Carries this user's rights").check()
    admin.get_by_role("button", name="Create token").click()
    token = admin.get_by_label("New token").input_value()
    with portal.client(token) as api:
        me = api.get("/api/auth/me").json()
    assert (me["subject"], me["scope"]) == ("user:default/bob", "write")
    assert me["groups"] == ["group:default/team-a", "group:default/team-b"]
    admin.context.close()


def test_a_person_not_in_the_catalog_sees_why(
    browser: Browser,  # noqa: F811
    portal: LiveServer,
) -> None:
    page = _page(browser, portal)
    page.goto("/login")
    page.get_by_role("link", name=re.compile(r"Sign in with")).click()
    page.locator('input[name="login"]').fill("carol")
    page.locator('input[name="password"]').fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="You are not in the portal's catalog")).to_be_visible()
    expect(page.locator("#refusal")).to_contain_text("carol@example.com")
    snap(page, "oidc-refused")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.context.close()
