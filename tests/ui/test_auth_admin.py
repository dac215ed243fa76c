"""Sign in with a token, manage API tokens on the admin page, error pages."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.ui.conftest import login, snap


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
