"""/api/rag/services and /api/rag/secrets over real HTTP, cluster emulated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.service import Provisioner
from portal_backend.settings import Settings
from tests.conftest import LiveServer, start_live_server
from tests.k8s_emulator import EmulatedCluster
from tests.provisioning.conftest import HF_TOKEN, register_service_entity
from tests.provisioning.test_provision import request_for

SERVICE = "docs-bot"


@pytest.fixture
def portal(k8s_settings: Settings) -> Iterator[LiveServer]:
    live, server, thread = start_live_server(k8s_settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)


def test_deployment_status_reconcile_and_idempotent_teardown(
    portal: LiveServer,
    provisioner: Provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    register_service_entity(session_factory, SERVICE)
    with portal.client() as client:
        missing = client.get(f"/api/rag/services/default/{SERVICE}/deployment")
        assert missing.status_code == 404
        assert "never provisioned" in missing.json()["error"]["message"]

        provisioner.provision(request_for(tmp_path))
        status = client.get(f"/api/rag/services/default/{SERVICE}/deployment").json()
        assert status["state"] == "Healthy" and status["cluster"] == "emu"
        assert status["entityRef"] == f"component:default/{SERVICE}"

        # The catalog shows the same status on the entity.
        entity = client.get(f"/api/catalog/entities/by-name/component/default/{SERVICE}").json()
        assert entity["status"]["deployment"]["state"] == "Healthy"

        cluster.edit("deployments", SERVICE, f"{SERVICE}-api", {"spec": {"replicas": 7}})
        reconciled = client.post(f"/api/rag/services/default/{SERVICE}/reconcile").json()
        assert reconciled["state"] == "Drifted"

        deleted = client.delete(f"/api/rag/services/default/{SERVICE}")
        assert deleted.status_code == 200, deleted.text
        body = deleted.json()
        assert body["remainingObjects"] == []
        assert f"component:default/{SERVICE}" in body["deletedEntities"]
        assert cluster.labelled(f"{SERVICE_LABEL}={SERVICE}") == []
        gone = client.get(f"/api/catalog/entities/by-name/component/default/{SERVICE}")
        assert gone.status_code == 404

        again = client.delete(f"/api/rag/services/default/{SERVICE}")
        assert again.status_code == 200
        assert again.json()["deletedObjects"] == [] and again.json()["deletedEntities"] == []


def test_teardown_needs_write_scope_and_a_valid_name(
    portal: LiveServer,
    make_token,
    cluster: EmulatedCluster,  # type: ignore[no-untyped-def]
) -> None:
    with portal.client(token=make_token("read")) as reader:
        assert reader.delete(f"/api/rag/services/default/{SERVICE}").status_code == 403
    with portal.client() as admin:
        bad = admin.delete("/api/rag/services/default/Bad_Name")
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["path"] == "name"


def test_group_token_may_not_tear_down_another_groups_service(
    portal: LiveServer,
    make_token,
    session_factory,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    provisioner: Provisioner,
) -> None:
    register_service_entity(session_factory, SERVICE)  # owned by group:default/team-a
    provisioner.provision(request_for(tmp_path))
    token = make_token("write", group="group:default/team-b")
    with portal.client(token=token) as other:
        refused = other.delete(f"/api/rag/services/default/{SERVICE}")
    assert refused.status_code == 403
    assert "team-a" in refused.json()["error"]["message"]
    assert cluster.labelled(f"{SERVICE_LABEL}={SERVICE}") != []


def test_secret_store_api_never_returns_values(
    portal: LiveServer,
    make_token,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    with portal.client() as admin:
        assert admin.put("/api/rag/secrets/hf-token", json={"value": HF_TOKEN}).status_code == 204
        listing = admin.get("/api/rag/secrets")
        assert listing.json() == {"items": [{"name": "hf-token", "scope": "global"}]}
        assert HF_TOKEN not in listing.text
        bad = admin.put("/api/rag/secrets/Bad Name!", json={"value": "x"})
        assert bad.status_code in (400, 404)
        empty = admin.put("/api/rag/secrets/x", json={"value": ""})
        assert empty.status_code in (400, 422)
    with portal.client(token=make_token("write")) as writer:
        assert writer.put("/api/rag/secrets/hf-token", json={"value": "x"}).status_code == 403
