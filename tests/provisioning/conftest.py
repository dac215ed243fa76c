"""Fixtures: an emulated cluster on 127.0.0.1 and settings/provisioner pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.provisioning.service import Provisioner
from portal_backend.settings import ClusterConfig, Settings
from tests.k8s_emulator import EmulatedCluster, running_cluster

HF_TOKEN = "hf_test_value_never_logged"


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    with running_cluster() as emulated:
        emulated.add_node("cpu-1")
        emulated.add_node("gpu-1", gpus=2, labels={"nvidia.com/gpu.product": "NVIDIA-L4"})
        yield emulated


def cluster_settings(settings: Settings, cluster: EmulatedCluster, tmp_path: Path) -> Settings:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    return settings.model_copy(
        update={
            "clusters": {"emu": ClusterConfig(kubeconfig=kubeconfig, context="emulator")},
            "default_cluster": "emu",
            "provision_poll_interval_s": 0.02,
            "provision_unschedulable_grace_s": 0.0,
            "provision_ready_timeout_s": 5.0,
            "provision_request_timeout_s": 2.0,
        }
    )


@pytest.fixture
def k8s_settings(settings: Settings, cluster: EmulatedCluster, tmp_path: Path) -> Settings:
    return cluster_settings(settings, cluster, tmp_path)


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def provisioner(k8s_settings: Settings, session_factory, logs: list[str]) -> Provisioner:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        SecretStore(session, k8s_settings).set(GLOBAL, "hf-token", HF_TOKEN)
    return Provisioner(k8s_settings, session_factory, log=logs.append)


def register_service_entity(session_factory, service: str) -> str:  # type: ignore[no-untyped-def]
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": service,
            "namespace": "default",
            "annotations": {
                "backstage.io/kubernetes-id": service,
                "rag-portal.io/service": service,
                "rag-portal.io/namespace": service,
            },
        },
        "spec": {"type": "rag-service", "lifecycle": "production", "owner": "group:default/team-a"},
    }
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": f"{service}-api", "annotations": {"rag-portal.io/service": service}},
        "spec": {
            "type": "openapi",
            "lifecycle": "production",
            "owner": "group:default/team-a",
            "definition": "openapi: 3.0.0",
        },
    }
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([entity, api])
    return f"component:default/{service}"


def entity_status(session_factory, ref: str) -> dict | None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        entity = CatalogService(session).get_by_ref(ref)
    return None if entity is None else (entity.get("status") or {})
