"""The Celery beat schedule runs the SLA jobs in a real worker process: the catalog entity
gets status.slo/status.cost, and a burning SLO reaches a webhook receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from catalog.service import CatalogService
from portal_backend.db import REPO_ROOT, session_scope
from tests.conftest import REDIS_URL
from tests.sla.conftest import push, rag_service, records, register
from tests.sla.test_webhooks import Receiver


def test_beat_evaluates_writes_status_and_delivers_alerts(  # type: ignore[no-untyped-def]
    settings, session_factory, tmp_path: Path
) -> None:
    (ref,) = register(session_factory, rag_service("bot", success_rate="99"))
    now = datetime.now(UTC)
    # The last 10 minutes: every request failed -> burn rate 100 on both page windows.
    push(session_factory, records(ref, now - timedelta(minutes=10), 590, 300, error_ratio=1.0), now)
    receiver = Receiver(fail_first=1)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url_override or settings.database_url,
        "REDIS_URL": REDIS_URL,
        "RAGPORTAL_DATA_DIR": str(tmp_path / "data"),
        "RAGPORTAL_CELERY_QUEUE": f"sla-test-{uuid.uuid4().hex[:8]}",
        "RAGPORTAL_LOG_JSON": "false",
        "RAGPORTAL_SLA_EVALUATE_INTERVAL_S": "1",
        "RAGPORTAL_SLA_COLLECT_INTERVAL_S": "1",
        "RAGPORTAL_SLA_WEBHOOK_INTERVAL_S": "1",
        "RAGPORTAL_SLA_WEBHOOK_BACKOFF_S": "1",
        "RAGPORTAL_SLA_WEBHOOKS": orjson.dumps(
            [{"url": f"{receiver.url}/hook", "format": "alertmanager"}]
        ).decode(),
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portal_backend.cli",
            "worker",
            "--beat",
            "--pool",
            "solo",
            "--concurrency",
            "1",
        ],
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        cwd=tmp_path,  # beat keeps its schedule file in the working directory
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            with session_scope(session_factory) as session:
                status = (CatalogService(session).get_by_ref(ref) or {}).get("status") or {}
            firing = [b for _, b in receiver.received if b["status"] == "firing"]
            if status.get("slo") and status.get("cost") and firing:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            tail = (tmp_path / "worker.log").read_text()[-3000:]
            raise AssertionError(f"no status/alert in time: {status}\n{tail}")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        receiver.server.shutdown()
    assert status["slo"]["state"] == "breached"
    assert status["slo"]["successRate"] == 0.0
    assert status["cost"]["budgetUsd"] == 1000.0
    assert firing[0]["alerts"][0]["labels"]["alertname"] == "SLOBurnRate"
    assert receiver.attempts >= 2  # the first delivery failed and was retried
