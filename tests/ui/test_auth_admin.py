"""Sign in with a token, manage API tokens on the admin page, error pages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import sessionmaker

from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer, start_live_server
from tests.ui.conftest import login, snap
from tests.ui.seed import rag_service, seed


def test_login_admin_tokens_and_logout(page: Page, live_portal: LiveServer) -> None:
    # Unauthenticated pages send the browser to the login form, keeping where it was going.
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fadmin"))
    page.get_by_label("API token").fill("rp_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    snap(page, "login-error")

    login(page, next_path="/admin")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    expect(page.get_by_text("No API tokens yet")).to_be_visible()

    page.get_by_label("Name", exact=True).fill("ci reader")
    page.get_by_label("Scope").select_option("read")
    page.get_by_label("Acts as (user ref)").fill("user:default/ci")
    page.get_by_role("button", name="Create token").click()
    new_token = page.get_by_label("New token").input_value()
    assert new_token.startswith("rp_")
    snap(page, "admin-token-created")
    # Shown once: a reload lists the token by prefix only.
    page.goto("/admin")
    expect(page.get_by_label("New token")).to_have_count(0)
    row = page.get_by_role("row", name=re.compile("ci reader"))
    expect(row).to_contain_text(new_token[:10])

    # The new read token works in the API and, signed in, cannot open the admin page.
    with live_portal.client(token=new_token) as api:
        assert api.get("/api/auth/tokens").status_code == 403
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke token ci reader").click()
    expect(page.get_by_text("No API tokens yet")).to_be_visible()
    with live_portal.client(token=new_token) as api:
        assert api.get("/api/auth/tokens").status_code == 401

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/login"))
    page.goto("/admin")
    expect(page).to_have_url(re.compile("/login"))


def test_error_pages_are_html_for_browsers_and_json_for_the_api(
    page: Page, live_portal: LiveServer, ui_token
) -> None:
    login(page)
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    snap(page, "error-404")

    reader = ui_token("read")
    page.context.clear_cookies()
    login(page, token=reader)
    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    with live_portal.client(token=None) as api:
        body = api.get("/api/no/such").json()
        assert body["response"]["statusCode"] == 404 and "error" in body


def _push(portal: LiveServer, token: str, service: str) -> int:
    record = {
        "service": service,
        "timestamp": datetime.now(UTC).isoformat(),
        "latency_ms": 120.0,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "outcome": "success",
    }
    with portal.client(token=token) as api:
        body = {"batch_id": uuid.uuid4().hex, "records": [record]}
        return api.post("/api/sla/usage", json=body).status_code


def test_a_token_revoked_on_the_admin_page_is_refused_at_once(
    browser: Browser, ui_settings: Settings, ui_db: sessionmaker
) -> None:
    """The usage push keeps verified tokens in a cache (an hour on this portal): revoking
    on the admin page forgets the token there, as the API's revoke does, so the very next
    push is refused instead of being accepted until the cache entry expires."""
    cached = ui_settings.model_copy(update={"token_cache_s": 3600})
    portal, server, thread = start_live_server(cached)
    context = browser.new_context(base_url=portal.url)
    context.set_default_timeout(15_000)
    try:
        seed(ui_db, rag_service("pushed-bot"))
        page = context.new_page()
        page.goto("/login?next=/admin")
        page.get_by_label("API token").fill(BOOTSTRAP_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{portal.url}/admin")
        page.get_by_label("Name", exact=True).fill("usage pusher")
        page.get_by_label("Scope").select_option("admin")
        page.get_by_role("button", name="Create token").click()
        token = page.get_by_label("New token").input_value()
        # Accepted, and now in the portal's cache of verified tokens.
        assert _push(portal, token, "pushed-bot") == 200
        assert _push(portal, token, "pushed-bot") == 200

        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Revoke token usage pusher").click()
        expect(page.get_by_role("row", name=re.compile("usage pusher"))).to_have_count(0)
        snap(page, "admin-token-revoked")
        assert _push(portal, token, "pushed-bot") == 401
    finally:
        context.close()  # its keep-alive connections would hold the server's shutdown
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "the test's portal did not stop"
