"""Foundation: health, readiness, metrics, auth, errors, settings."""

from __future__ import annotations

import httpx

from portal_backend.settings import Settings
from tests.conftest import LiveServer


def test_healthz_and_readyz_check_the_database(anon_client: httpx.Client) -> None:
    assert anon_client.get("/healthz").json() == {"status": "ok"}
    ready = anon_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


def test_readyz_reports_unavailable_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import start_live_server

    settings = Settings(
        data_dir=tmp_path,
        database_url_override="postgresql://nobody@127.0.0.1:1/none",
        log_json=False,
    )
    live, server, thread = start_live_server(settings)
    try:
        response = httpx.get(f"{live.url}/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_metrics_exposes_request_counters(anon_client: httpx.Client) -> None:
    anon_client.get("/healthz")
    body = anon_client.get("/metrics").text
    assert 'ragportal_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert "ragportal_http_request_duration_seconds_bucket" in body


def test_tokens_need_admin_and_are_shown_once(
    admin_client: httpx.Client, live_server: LiveServer, make_token
) -> None:  # type: ignore[no-untyped-def]
    created = admin_client.post("/api/auth/tokens", json={"name": "ci", "scope": "write"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("rp_")
    listed = admin_client.get("/api/auth/tokens").json()["items"]
    assert [t["name"] for t in listed] == ["ci"]
    assert all("token" not in t for t in listed)
    assert token not in admin_client.get("/api/auth/tokens").text

    with live_server.client(token) as writer:
        forbidden = writer.get("/api/auth/tokens")
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["name"] == "NotAllowedError"

    admin_client.delete(f"/api/auth/tokens/{created.json()['id']}")
    with live_server.client(token) as revoked:
        assert revoked.get("/api/auth/tokens").status_code == 401


def test_missing_and_bad_tokens_get_401_in_backstage_shape(anon_client: httpx.Client) -> None:
    response = anon_client.get("/api/auth/tokens")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error"]["name"] == "AuthenticationError"
    assert body["request"] == {"method": "GET", "url": "/api/auth/tokens"}
    assert body["response"] == {"statusCode": 401}

    wrong = anon_client.get("/api/auth/tokens", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    malformed = anon_client.get("/api/auth/tokens", headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401
    assert "Bearer" in malformed.json()["error"]["message"]


def test_token_create_rejects_bad_scope_with_field(admin_client: httpx.Client) -> None:
    response = admin_client.post("/api/auth/tokens", json={"name": "x", "scope": "root"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "body.scope"


def test_oversized_body_is_refused_with_413(admin_client: httpx.Client, live_server) -> None:  # type: ignore[no-untyped-def]
    limit = live_server.settings.max_request_body_bytes
    response = admin_client.post(
        "/api/auth/tokens", content=b"x" * (limit + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["name"] == "PayloadTooLargeError"


def test_settings_defaults_need_nothing(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("DATABASE_URL", "REDIS_URL", "RAGPORTAL_DATA_DIR", "RAGPORTAL_BOOTSTRAP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / '.ragportal' / 'ragportal.db'}"
    assert settings.redis_url is None
    assert settings.anonymous_read is False
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert Settings().database_url == "postgresql+psycopg://u@h/db"


def test_the_token_cache_setting_keeps_its_former_name(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """RAGPORTAL_TOKEN_CACHE_S covers every bearer token now; deployments that set the
    usage push's former RAGPORTAL_SLA_INGEST_TOKEN_CACHE_S keep their value."""
    monkeypatch.delenv("RAGPORTAL_TOKEN_CACHE_S", raising=False)
    monkeypatch.setenv("RAGPORTAL_SLA_INGEST_TOKEN_CACHE_S", "0")
    assert Settings().token_cache_s == 0
    monkeypatch.delenv("RAGPORTAL_SLA_INGEST_TOKEN_CACHE_S")
    monkeypatch.setenv("RAGPORTAL_TOKEN_CACHE_S", "12.5")
    assert Settings().token_cache_s == 12.5
    assert Settings(token_cache_s=1).token_cache_s == 1
