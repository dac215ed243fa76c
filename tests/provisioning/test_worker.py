"""Real Celery worker processes (Redis) run provision and teardown; beat runs the reconciler."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.service import Provisioner
from portal_backend.settings import Settings
from tests.conftest import REDIS_URL
from tests.k8s_emulator import EmulatedCluster
from tests.provisioning.fixture_bundle import write_bundle
from tests.scaffolder.conftest import Workers, settings_env
from workers.celery_app import make_celery
from workers.provisioning import PROVISION, TEARDOWN

SERVICE = "worker-bot"


def worker_env(settings: Settings) -> dict[str, str]:
    env = settings_env(settings)
    env.update(
        RAGPORTAL_CLUSTERS=json.dumps(
            {name: c.model_dump(mode="json") for name, c in settings.clusters.items()}
        ),
        RAGPORTAL_PROVISION_POLL_INTERVAL_S="0.05",
        RAGPORTAL_RECONCILE_INTERVAL_S=str(settings.reconcile_interval_s),
        RAGPORTAL_PROVISIONING_SECRET_KEY=settings.provisioning_secret_key or "",
    )
    if settings.default_cluster:
        env["RAGPORTAL_DEFAULT_CLUSTER"] = settings.default_cluster
    return env


class ProvisioningWorkers(Workers):
    def environment(self, settings: Settings) -> dict[str, str]:
        return worker_env(settings)


@pytest.fixture
def worker_settings(k8s_settings: Settings, tmp_path: Path) -> Settings:
    return k8s_settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "celery_queue": f"provisioning-test-{uuid.uuid4().hex[:10]}",
            "provisioning_secret_key": "test-secret-store-key",
            "reconcile_interval_s": 0.5,
        }
    )


@pytest.fixture
def workers(worker_settings: Settings, tmp_path: Path) -> Iterator[ProvisioningWorkers]:
    started = ProvisioningWorkers(worker_settings, tmp_path)
    yield started
    started.stop_all()


def wait_for(check: Callable[[], object], what: str, workers: Workers, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    logs = "\n".join(w.log.read_text()[-3000:] for w in workers.started)
    raise AssertionError(f"timed out waiting for {what}; worker logs:\n{logs}")


def test_workers_provision_reconcile_on_beat_and_tear_down(
    worker_settings: Settings,
    workers: ProvisioningWorkers,
    cluster: EmulatedCluster,
    session_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from portal_backend.db import session_scope
    from portal_backend.provisioning.secrets import GLOBAL, SecretStore

    with session_scope(session_factory) as session:
        SecretStore(session, worker_settings).set(GLOBAL, "hf-token", "hf_x")
    observer = Provisioner(worker_settings, session_factory)
    app = make_celery(worker_settings, queue=worker_settings.celery_queue)
    workers.start(beat=True, concurrency=2)

    k8s = write_bundle(tmp_path, SERVICE)
    app.send_task(PROVISION, args=[SERVICE, str(k8s), "prod"], queue=worker_settings.celery_queue)
    wait_for(
        lambda: (observer.record(SERVICE) or {}).get("state") == "Healthy",
        "provision on the worker",
        workers,
    )
    assert len(cluster.labelled(f"{SERVICE_LABEL}={SERVICE}")) == 15

    # Beat's reconciler notices a hand edit without anyone asking.
    cluster.edit("deployments", SERVICE, f"{SERVICE}-api", {"spec": {"replicas": 9}})
    wait_for(
        lambda: (observer.record(SERVICE) or {}).get("state") == "Drifted",
        "the reconciler on beat",
        workers,
    )

    app.send_task(TEARDOWN, args=[SERVICE], queue=worker_settings.celery_queue)
    wait_for(
        lambda: (
            not cluster.labelled(f"{SERVICE_LABEL}={SERVICE}") and observer.record(SERVICE) is None
        ),
        "teardown on the worker",
        workers,
    )
