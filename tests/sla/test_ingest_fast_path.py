"""The usage push's ASGI fast path keeps the route's contract: body-size limit, bearer
auth with the documented error shape, request metrics, and revocation taking effect
within the token cache's TTL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from portal_backend.auth.service import revoke_token
from portal_backend.db import session_scope
from portal_backend.settings import Settings
from portal_backend.sla import ingest_tokens
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer, start_live_server
from tests.sla.conftest import rag_service, records, register

TTL_S = 0.5


@pytest.fixture(scope="module")
def small_server(migrated_settings: Settings) -> Iterator[LiveServer]:
    """A portal with a 20 kB body limit and a 0.5 s token cache."""
    tuned = migrated_settings.model_copy(
        update={"max_request_body_bytes": 20_000, "token_cache_s": TTL_S}
    )
    live, server, thread = start_live_server(tuned)
    yield live
    server.should_exit = True
    thread.join(timeout=10)


def _body(ref: str, n: int = 20) -> dict:
    start = datetime.now(UTC) - timedelta(seconds=5)
    return {"batch_id": uuid.uuid4().hex, "records": records(ref, start, 2, n)}


def _count(url: str, status: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    prefix = (
        f'ragportal_http_requests_total{{method="POST",route="/api/sla/usage",status="{status}"}}'
    )
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_errors_keep_the_documented_shape_and_are_counted(  # type: ignore[no-untyped-def]
    small_server, settings, session_factory
) -> None:
    (ref,) = register(session_factory, rag_service("bot"))
    url = small_server.url
    before = {s: _count(url, s) for s in ("200", "401", "413")}
    with small_server.client() as admin:
        assert admin.post("/api/sla/usage", json=_body(ref)).status_code == 200
        big = admin.post("/api/sla/usage", json=_body(ref, 200))  # ~40 kB
    assert big.status_code == 413
    assert big.json() == {
        "error": {
            "name": "PayloadTooLargeError",
            "message": f"request body of {len(big.request.content)} bytes exceeds the limit "
            "of 20000 bytes",
        },
        "request": {"method": "POST", "url": "/api/sla/usage"},
        "response": {"statusCode": 413},
    }
    basic = httpx.post(
        f"{url}/api/sla/usage", json=_body(ref), headers={"Authorization": "Basic eDp5"}
    )
    assert basic.status_code == 401 and basic.headers["www-authenticate"] == "Bearer"
    assert basic.json()["error"] == {
        "name": "AuthenticationError",
        "message": "Authorization header must be 'Bearer <token>'",
    }
    with small_server.client(token="rp_not-a-token") as stranger:
        unknown = stranger.post("/api/sla/usage", json=_body(ref))
    assert unknown.status_code == 401
    assert unknown.json()["error"]["message"] == "invalid, expired or revoked token"
    # No credentials at all: the regular route answers, with the same shape.
    anonymous = httpx.post(f"{url}/api/sla/usage", json=_body(ref))
    assert anonymous.status_code == 401 and anonymous.json()["response"]["statusCode"] == 401
    after = {s: _count(url, s) for s in ("200", "401", "413")}
    assert after["200"] - before["200"] == 1
    assert after["413"] - before["413"] == 1
    assert after["401"] - before["401"] == 3


def test_revocation_takes_effect_within_the_cache_ttl(  # type: ignore[no-untyped-def]
    small_server, settings, session_factory
) -> None:
    (ref,) = register(session_factory, rag_service("bot"))
    with session_scope(session_factory) as session:
        created = ingest_tokens.issue(session, ref, owner_group=None, created_by="test")
    with small_server.client(token=created.token) as pusher:
        assert pusher.post("/api/sla/usage", json=_body(ref)).status_code == 200
        # Revoked by another process (the CLI, another portal worker): this process may
        # accept the token for at most TTL_S more seconds, then refuses it.
        with session_scope(session_factory) as session:
            revoke_token(session, created.record.id)
        revoked_at = time.monotonic()
        statuses = []
        while time.monotonic() - revoked_at < TTL_S + 0.3:
            statuses.append(
                (time.monotonic() - revoked_at, pusher.post("/api/sla/usage", json=_body(ref)))
            )
            time.sleep(0.05)
    assert all(r.status_code == 401 for t, r in statuses if t > TTL_S)
    assert statuses[-1][1].status_code == 401
    assert {r.status_code for _, r in statuses} <= {200, 401}
    # An admin revoking through the API is refused at once by the process that handled it.
    with session_scope(session_factory) as session:
        second = ingest_tokens.issue(session, ref, owner_group=None, created_by="test")
    with small_server.client(token=second.token) as pusher:
        assert pusher.post("/api/sla/usage", json=_body(ref)).status_code == 200
        with small_server.client(token=BOOTSTRAP_TOKEN) as admin:
            assert (
                admin.delete(
                    f"/api/sla/services/component/default/bot/ingest-tokens/{second.record.id}"
                ).status_code
                == 204
            )
        assert pusher.post("/api/sla/usage", json=_body(ref)).status_code == 401


@pytest.mark.parametrize("limit", [1, 2])
def test_ingest_concurrency_bounds_the_batches_stored_at_once(  # type: ignore[no-untyped-def]
    limit, migrated_settings, session_factory, monkeypatch
) -> None:
    """``sla_ingest_concurrency`` batches of one process are stored at once, never more,
    however many pushes arrive together."""
    from portal_backend.sla.usage_push import UsagePush

    real_push = UsagePush.push
    lock = threading.Lock()
    inside = {"now": 0, "most": 0}

    def observed_push(*args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        try:
            time.sleep(0.2)  # long enough for every other push to arrive meanwhile
            return real_push(*args, **kwargs)
        finally:
            with lock:
                inside["now"] -= 1

    monkeypatch.setattr(UsagePush, "push", observed_push)
    tuned = migrated_settings.model_copy(update={"sla_ingest_concurrency": limit})
    live, server, thread = start_live_server(tuned)
    try:
        (ref,) = register(session_factory, rag_service(f"bot-limit-{limit}"))
        headers = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
        with ThreadPoolExecutor(6) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        httpx.post(
                            f"{live.url}/api/sla/usage",
                            json=_body(ref),
                            headers=headers,
                            timeout=30,
                        ).status_code
                    ),
                    range(6),
                )
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert statuses == [200] * 6
    assert inside["most"] == limit
