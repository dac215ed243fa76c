"""Pages over plain HTTP (no browser, no JavaScript): anonymous read, login redirects,
CSRF on forms, HTML error pages, and the session secret kept in the data folder."""

from __future__ import annotations

import re
import stat

from fastapi.testclient import TestClient

from portal_backend.app import create_app
from portal_backend.settings import Settings
from portal_backend.web.session import SECRET_FILE, resolve_session_secret
from tests.conftest import BOOTSTRAP_TOKEN
from tests.ui.seed import groups, rag_service, seed


def _client(settings: Settings, **changes: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes)), follow_redirects=False)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "form without CSRF token"
    return match.group(1)


def test_anonymous_read_shows_catalog_and_entity_without_javascript(
    settings: Settings, session_factory
) -> None:
    seed(session_factory, groups() + rag_service("faq-bot"))
    client = _client(settings, anonymous_read=True)
    catalog = client.get("/catalog?kind=component")
    assert catalog.status_code == 200
    assert "faq-bot" in catalog.text and "Guest (read only)" in catalog.text
    entity = client.get("/catalog/default/component/faq-bot")
    assert entity.status_code == 200
    # Server-rendered content a reader needs, in the HTML itself.
    for text in ("Assistant faq-bot", "resource:default/faq-bot-model-server", "<svg"):
        assert text in entity.text
    assert "Delete service" not in entity.text  # read-only visitors get no write actions
    # Write pages still need a signed-in token.
    create = client.get("/create/templates/default/rag-service")
    assert create.status_code == 303 and create.headers["location"].startswith("/login?next=")
    assert client.get("/admin").status_code == 303


def test_without_anonymous_read_every_page_asks_for_login(settings: Settings) -> None:
    client = _client(settings, anonymous_read=False)
    for path in ("/", "/catalog", "/tasks", "/templates", "/create"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")


def test_forms_need_the_session_csrf_token_and_safe_redirects(settings: Settings) -> None:
    client = _client(settings)
    page = client.get("/login")
    assert client.post("/login", data={"token": BOOTSTRAP_TOKEN}).status_code == 403
    signed_in = client.post(
        "/login",
        data={"token": BOOTSTRAP_TOKEN, "csrf": _csrf(page.text), "next": "//evil.example"},
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    admin = client.get("/admin")
    assert admin.status_code == 200
    forged = client.post("/admin/tokens", data={"name": "x", "scope": "admin", "csrf": "nope"})
    assert forged.status_code == 403 and "Not allowed" in forged.text
    made = client.post(
        "/admin/tokens", data={"name": "ok", "scope": "read", "csrf": _csrf(admin.text)}
    )
    assert made.status_code == 200 and 'id="new-token"' in made.text


def test_error_pages_are_html_and_api_errors_stay_json(settings: Settings) -> None:
    client = _client(settings, anonymous_read=True)
    missing = client.get("/catalog/default/component/nope", headers={"accept": "text/html"})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "There is no component named default/nope" in missing.text
    api = client.get("/api/catalog/entities/by-name/component/default/nope")
    assert api.status_code == 404 and api.json()["response"]["statusCode"] == 404


def test_session_secret_is_generated_once_and_kept_private(settings: Settings) -> None:
    path = settings.data_dir / SECRET_FILE
    path.unlink(missing_ok=True)
    first = resolve_session_secret(settings.model_copy(update={"session_secret": None}))
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_session_secret(settings.model_copy(update={"session_secret": None})) == first
    assert resolve_session_secret(settings.model_copy(update={"session_secret": "set"})) == "set"
