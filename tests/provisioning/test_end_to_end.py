"""The whole path: form -> scaffolder task on real workers -> rag:provision -> catalog status.

Real portal over HTTP, real Celery worker processes on Redis, real cookiecutter and git,
the shipped rag-service template; the cluster is the emulator (or none at all).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.settings import Settings
from tests.conftest import REDIS_URL, LiveServer, start_live_server
from tests.k8s_emulator import EmulatedCluster
from tests.provisioning.test_worker import ProvisioningWorkers
from tests.rag_template.template_flow import with_defaults

API = "/api/scaffolder/v2"


def _settings(base: Settings, **extra: object) -> Settings:
    return base.model_copy(
        update={
            "redis_url": REDIS_URL,
            "celery_queue": f"provision-e2e-{uuid.uuid4().hex[:10]}",
            "provisioning_secret_key": "e2e-secret-store-key",
            **extra,
        }
    )


@contextmanager
def portal_and_workers(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    live, server, thread = start_live_server(settings)
    workers = ProvisioningWorkers(settings, tmp_path)
    workers.start(beat=False, concurrency=1)
    try:
        yield live
    finally:
        workers.stop_all()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def owner_group(session_factory) -> None:  # type: ignore[no-untyped-def]
    """The template's owner step refuses owners that are not Groups in the catalog."""
    team = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": "team-a"},
        "spec": {"type": "team", "children": []},
    }
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([team])


@pytest.fixture
def with_cluster(k8s_settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    # A real cluster pulls images: the portal's registry setting is what CI pushes to.
    registry = {"image_registry": "ghcr.io/acme"}
    with portal_and_workers(_settings(k8s_settings, **registry), tmp_path) as live:
        yield live


@pytest.fixture
def without_cluster(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """No cluster and the local runtime turned off (tests/provisioning/local runs it)."""
    with portal_and_workers(_settings(settings, runtime_enabled=False), tmp_path) as live:
        yield live


def run_task(client: httpx.Client, name: str) -> dict:
    values = with_defaults(
        {"name": name, "owner": "group:default/team-a", "cpu_fallback_enabled": False}
    )
    created = client.post(
        f"{API}/tasks", json={"templateRef": "template:default/rag-service", "values": values}
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        task = client.get(f"{API}/tasks/{task_id}").json()
        if task["status"] in ("completed", "failed", "cancelled"):
            events = client.get(f"{API}/tasks/{task_id}/events").json()
            task["log"] = [e["body"].get("message", "") for e in events]
            return task
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} did not finish")


def test_form_to_healthy_deployment_and_back(
    with_cluster: LiveServer, cluster: EmulatedCluster
) -> None:
    name = "e2e-bot"
    with with_cluster.client() as client:
        assert client.put("/api/rag/secrets/hf-token", json={"value": "hf_e2e"}).status_code == 204
        task = run_task(client, name)
        assert task["status"] == "completed", "\n".join(task["log"])
        log = "\n".join(task["log"])
        assert "is Healthy on cluster emu" in log and "hf_e2e" not in log

        status = client.get(f"/api/rag/services/default/{name}/deployment").json()
        assert status["state"] == "Healthy"
        entity = client.get(f"/api/catalog/entities/by-name/component/default/{name}").json()
        assert entity["status"]["deployment"]["state"] == "Healthy"
        assert entity["metadata"]["annotations"]["backstage.io/kubernetes-id"] == name
        assert len(cluster.labelled(f"{SERVICE_LABEL}={name}")) == 29

        deleted = client.delete(f"/api/rag/services/default/{name}").json()
        assert cluster.labelled(f"{SERVICE_LABEL}={name}") == []
        assert f"component:default/{name}" in deleted["deletedEntities"]
        assert f"resource:default/{name}-model-server" in deleted["deletedEntities"]
        leftover = client.get(
            "/api/catalog/entities/by-query",
            params={"filter": f"metadata.annotations.rag-portal.io/service={name}"},
        ).json()
        assert leftover["items"] == []


def test_form_without_a_cluster_or_runtime_ends_with_the_plan(
    without_cluster: LiveServer,
) -> None:
    name = "plan-bot"
    with without_cluster.client() as client:
        task = run_task(client, name)
        assert task["status"] == "completed", "\n".join(task["log"])
        assert any("no Kubernetes cluster is configured" in line for line in task["log"])
        status = client.get(f"/api/rag/services/default/{name}/deployment").json()
        assert status["state"] == "Planned" and len(status["objects"]) == 26
        planned = client.get(
            "/api/catalog/entities/by-query", params={"filter": "status.deployment.state=planned"}
        ).json()
        assert [e["metadata"]["name"] for e in planned["items"]] == [name]
