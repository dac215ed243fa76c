"""Alert transitions are delivered to webhooks (Alertmanager JSON, Slack payload), retried
with backoff while the receiver fails, and given up after the configured attempts."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from portal_backend.db import session_scope
from portal_backend.sla import alerts, jobs
from portal_backend.sla.tables import Notification
from tests.sla.conftest import T0


class Receiver:
    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.received: list[tuple[str, dict]] = []
        self.attempts = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                status = 503 if receiver.attempts <= receiver.fail_first else 200
                if status == 200:
                    receiver.received.append((self.path, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.server.shutdown()


def _condition(firing: bool) -> alerts.Condition:
    return alerts.Condition(
        "SLOBurnRate",
        "component:default/bot",
        "page",
        firing,
        {"slo": "availability"},
        {"summary": "availability error budget burning fast (1h&5m>14.4x)"},
    )


def test_delivery_retries_until_the_receiver_accepts(session_factory, settings, receiver) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(
        update={
            "sla_webhooks": [
                {"url": f"{receiver.url}/alertmanager", "format": "alertmanager"},
                {"url": f"{receiver.url}/slack", "format": "slack"},
            ]
        }
    )
    with session_scope(session_factory) as session:
        alerts.reconcile(session, [_condition(True)], T0, settings.sla_webhooks)
    with httpx.Client(timeout=5) as client:
        # Both first attempts get 503: rescheduled 30 s later.
        assert jobs.deliver(settings, session_factory, client, T0) == {
            "delivered": 0,
            "retrying": 2,
            "failed": 0,
        }
        assert jobs.deliver(settings, session_factory, client, T0 + timedelta(seconds=10)) == {
            "delivered": 0,
            "retrying": 0,
            "failed": 0,
        }
        assert jobs.deliver(settings, session_factory, client, T0 + timedelta(seconds=31)) == {
            "delivered": 2,
            "retrying": 0,
            "failed": 0,
        }
        with session_scope(session_factory) as session:
            alerts.reconcile(
                session, [_condition(False)], T0 + timedelta(minutes=5), settings.sla_webhooks
            )
        assert (
            jobs.deliver(settings, session_factory, client, T0 + timedelta(minutes=5))["delivered"]
            == 2
        )

    by_path = {}
    for path, body in receiver.received:
        by_path.setdefault(path, []).append(body)
    firing, resolved = by_path["/alertmanager"]
    assert firing["version"] == "4" and firing["status"] == "firing"
    assert firing["alerts"][0]["labels"] == {
        "alertname": "SLOBurnRate",
        "severity": "page",
        "service": "component:default/bot",
        "slo": "availability",
    }
    assert firing["alerts"][0]["startsAt"] == "2026-11-10T12:00:00Z"
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2026-11-10T12:05:00Z"
    slack_firing, slack_resolved = by_path["/slack"]
    assert slack_firing["text"].startswith(":rotating_light: [FIRING] SLOBurnRate (page)")
    assert "component:default/bot" in slack_firing["text"]
    assert slack_resolved["text"].startswith(":white_check_mark: [RESOLVED]")
    with session_scope(session_factory) as session:
        notes = session.scalars(select(Notification).order_by(Notification.id)).all()
        assert [(n.state, n.attempts) for n in notes] == [
            ("delivered", 2),
            ("delivered", 2),
            ("delivered", 1),
            ("delivered", 1),
        ]


def test_delivery_gives_up_after_max_attempts(session_factory, settings) -> None:  # type: ignore[no-untyped-def]
    dead = Receiver(fail_first=10**6)
    settings = settings.model_copy(
        update={
            "sla_webhooks": [{"url": dead.url, "format": "alertmanager"}],
            "sla_webhook_max_attempts": 3,
        }
    )
    try:
        with session_scope(session_factory) as session:
            alerts.reconcile(session, [_condition(True)], T0, settings.sla_webhooks)
        with httpx.Client(timeout=5) as client:
            outcomes = [
                jobs.deliver(settings, session_factory, client, T0 + timedelta(hours=h))
                for h in range(4)
            ]
    finally:
        dead.server.shutdown()
    assert [o["retrying"] for o in outcomes] == [1, 1, 0, 0]
    assert outcomes[2]["failed"] == 1
    with session_scope(session_factory) as session:
        note = session.scalars(select(Notification)).one()
        assert (note.state, note.attempts) == ("failed", 3)
        assert note.last_error.startswith("HTTP 503")
