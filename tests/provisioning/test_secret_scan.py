"""No secret anywhere it should not be (issue 22), after a whole service's life:
create (the form's task on real workers) -> provision (the Kubernetes emulator) ->
usage (pushed with the service's own ingest token) -> teardown (delete).

The secrets: the bootstrap admin token, an API token issued through the API, the
service's ingest token and Qdrant key (both made by the provisioner), the Hugging Face
token (set by an admin), and the key that encrypts the secret store. Scanned: the
portal's log and the workers' logs (at INFO), every task's events (the task log) and
output, every error answer the run received (the API refusing a revoked token, a token
of another service, a bad secret body), the audit log, and the generated repository:
every object in its git history and every file left in the data folder's workspaces.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets as pysecrets
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import structlog

from portal_backend.db import session_scope
from portal_backend.logging import configure_logging
from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.bundle_secrets import INGEST_TOKEN, QDRANT_KEY
from portal_backend.provisioning.secrets import SecretStore
from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN
from tests.k8s_emulator import EmulatedCluster
from tests.provisioning.test_end_to_end import (  # noqa: F401  (owner_group: autouse)
    _settings,
    owner_group,
    portal_and_workers,
    run_task,
)

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

NAME = "scan-bot"
REF = f"component:default/{NAME}"
STORE_KEY = "e2e-secret-store-key"  # what _settings configures


@pytest.fixture
def portal_log() -> Iterator[None]:
    """The in-process portal logs as ``ragportal serve`` does (JSON at INFO, to stderr);
    the test process's logging is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    configure_logging("INFO", json=True)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def _git_objects(repo: Path) -> str:
    """Every object of the repository (all commits, trees and blobs), as text."""
    listed = subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    )
    return listed.stdout.decode("utf-8", "replace")


def _files_under(folder: Path) -> str:
    if not folder.exists():
        return ""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


def _found(secret: str, text: str) -> bool:
    return secret in text


def test_no_secret_in_logs_tasks_answers_or_repository(
    k8s_settings: Settings,
    cluster: EmulatedCluster,
    session_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    portal_log: None,
) -> None:
    hf_token = f"hf_{pysecrets.token_urlsafe(24)}"
    answers: list[httpx.Response] = []

    def record(response: httpx.Response) -> None:
        response.read()
        answers.append(response)

    settings = _settings(
        k8s_settings, image_registry="ghcr.io/acme", log_level="INFO", log_json=True
    )
    with portal_and_workers(settings, tmp_path) as live:
        hooks = {"response": [record]}
        with live.client(event_hooks=hooks) as admin:
            assert admin.put("/api/rag/secrets/hf-token", json={"value": hf_token}).is_success
            issued = admin.post("/api/auth/tokens", json={"name": "scan", "scope": "write"})
            assert issued.status_code == 201, issued.text
            api_token = issued.json()["token"]
            answers.remove(issued)  # the one answer that hands a token out, by design

            # create -> provision
            task = run_task(admin, NAME)
            assert task["status"] == "completed", "\n".join(task["log"])
            with session_scope(session_factory) as session:
                store = SecretStore(session, settings)
                ingest_token = store.get(NAME, INGEST_TOKEN)
                qdrant_key = store.get(NAME, QDRANT_KEY)
            assert ingest_token and qdrant_key, "the provisioner made both"

            # usage, with the service's own token
            start = datetime.now(UTC) - timedelta(minutes=3)
            records = [
                {
                    "service": REF,
                    "timestamp": (start + timedelta(seconds=i)).isoformat(),
                    "latency_ms": 80.0,
                    "outcome": "success",
                }
                for i in range(20)
            ]
            batch = {"batch_id": uuid.uuid4().hex, "records": records}
            with live.client(token=ingest_token, event_hooks=hooks) as service:
                pushed = service.post("/api/sla/usage", json=batch)
                assert pushed.status_code == 200, pushed.text
                # Error answers: another service's records with this token.
                other = dict(batch, records=[dict(records[0], service="component:default/x")])
                assert service.post("/api/sla/usage", json=other).status_code in (400, 403)
            with live.client(token=api_token, event_hooks=hooks) as user:
                assert user.get("/api/auth/me").status_code == 200
            token_id = issued.json()["id"]
            assert admin.delete(f"/api/auth/tokens/{token_id}").status_code == 204
            with live.client(token=api_token, event_hooks=hooks) as revoked:
                assert revoked.get("/api/auth/me").status_code == 401
            assert admin.put("/api/rag/secrets/hf-token", json={"value": 7}).status_code in (
                400,
                422,
            )
            audit = admin.get("/api/auth/audit", params={"limit": 500})
            assert audit.status_code == 200

            # The scan looks for the values in use: the cluster's Secrets carry them.
            in_cluster = json.dumps(
                [
                    {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
                    | o.get("stringData", {})
                    for o in cluster.labelled(f"{SERVICE_LABEL}={NAME}")
                    if o["kind"] == "Secret"
                ]
            )
            assert ingest_token in in_cluster and qdrant_key in in_cluster
            assert hf_token in in_cluster

            # teardown
            deleted = admin.delete(f"/api/rag/services/default/{NAME}")
            assert deleted.status_code == 200, deleted.text

            task_id = task["id"]
            task_answer = admin.get(f"/api/scaffolder/v2/tasks/{task_id}").text
            events = admin.get(f"/api/scaffolder/v2/tasks/{task_id}/events").text

    captured = capfd.readouterr()
    worker_logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    repositories = sorted((settings.data_dir / "repos").glob("*/*.git"))
    assert repositories, "the task published the service's repository"
    places = {
        "portal log": captured.out + captured.err,
        "worker logs": worker_logs,
        "task log (events)": events,
        "task and its output": task_answer,
        "error answers": "\n".join(
            f"{a.status_code} {a.headers} {a.text}" for a in answers if a.status_code >= 400
        ),
        "all answers": "\n".join(a.text for a in answers),
        "audit log": audit.text,
        "generated repository": "\n".join(_git_objects(r) for r in repositories),
        "workspaces": _files_under(settings.data_dir / "workspaces"),
    }
    assert len(places["portal log"]) > 1000 and len(worker_logs) > 1000  # they did log
    assert any(a.status_code >= 400 for a in answers)
    secrets = {
        "bootstrap token": BOOTSTRAP_TOKEN,
        "issued API token": api_token,
        "ingest token": ingest_token,
        "Qdrant key": qdrant_key,
        "Hugging Face token": hf_token,
        "secret store key": STORE_KEY,
    }
    leaks = [
        f"{secret} in {place}"
        for place, text in places.items()
        for secret, value in secrets.items()
        if _found(value, text)
    ]
    assert leaks == []
