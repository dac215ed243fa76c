"""Provisioning against the emulated API server, through the official client over HTTP."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from portal_backend.db import session_scope
from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.secrets import SecretStore
from portal_backend.provisioning.service import (
    Provisioner,
    ProvisioningError,
    ProvisionRequest,
)
from tests.k8s_emulator import EmulatedCluster, Fault
from tests.provisioning.conftest import HF_TOKEN, entity_status, register_service_entity
from tests.provisioning.fixture_bundle import write_bundle

SERVICE = "docs-bot"


def request_for(tmp_path: Path, service: str = SERVICE, **bundle: object) -> ProvisionRequest:
    k8s = write_bundle(tmp_path / service, service, **bundle)  # type: ignore[arg-type]
    return ProvisionRequest(service=service, bundle_dir=k8s, environment="prod", gpu_class="L4")


def test_first_apply_creates_everything_in_dependency_order(
    provisioner: Provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,
    logs: list[str],
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    ref = register_service_entity(session_factory, SERVICE)
    outcome = provisioner.provision(request_for(tmp_path))

    assert outcome.state == "Healthy"
    assert {o["action"] for o in outcome.objects} == {"created"}
    applied = [(kind, name) for verb, kind, name in cluster.writes if verb == "apply"]
    kinds = [kind for kind, _ in applied]
    assert kinds[0] == "Namespace"
    order = applied.index
    # namespace < secrets/config < storage < qdrant < vLLM < API < ingestion job
    assert order(("Secret", f"{SERVICE}-hf-token")) < order(
        ("PersistentVolumeClaim", f"{SERVICE}-hf-cache")
    )
    assert order(("PersistentVolumeClaim", f"{SERVICE}-hf-cache")) < order(
        ("StatefulSet", f"{SERVICE}-qdrant")
    )
    assert order(("StatefulSet", f"{SERVICE}-qdrant")) < order(("Deployment", f"{SERVICE}-vllm"))
    assert order(("Deployment", f"{SERVICE}-vllm")) < order(("Deployment", f"{SERVICE}-api"))
    assert applied[-1] == ("Job", f"{SERVICE}-ingest")
    # Every object carries the service label; server-side apply under our field manager.
    labelled = cluster.labelled(f"{SERVICE_LABEL}={SERVICE}")
    assert len(labelled) == len(outcome.objects) == 15
    api = cluster.get("deployments", SERVICE, f"{SERVICE}-api")
    assert api is not None and api["spec"]["replicas"] == 2  # the prod overlay's patch
    assert api["metadata"]["uid"] and api["metadata"]["creationTimestamp"]

    # Secrets come from the store: HF token as stored, a generated Qdrant key, an ingest token.
    hf = cluster.get("secrets", SERVICE, f"{SERVICE}-hf-token")
    assert base64.b64decode(hf["data"]["token"]).decode() == HF_TOKEN
    ingest = base64.b64decode(
        cluster.get("secrets", SERVICE, f"{SERVICE}-portal")["data"]["ingest-token"]
    ).decode()
    from portal_backend.auth.service import authenticate

    with session_scope(session_factory) as session:
        principal = authenticate(session, ingest, None)
        qdrant_key = SecretStore(session, provisioner.settings).get(SERVICE, "qdrant-api-key")
    assert principal is not None and principal.purpose == "ingest"
    assert principal.service_ref == ref
    # ... and never reach the log.
    joined = "\n".join(logs)
    for value in (HF_TOKEN, ingest, qdrant_key):
        assert value and value not in joined
    assert "Job/docs-bot-ingest ready" in joined

    status = entity_status(session_factory, ref)
    assert status["deployment"]["state"] == "Healthy"
    assert status["deployment"]["cluster"] == "emu"
    assert len(status["deployment"]["objects"]) == 15


def test_second_apply_changes_nothing(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    req = request_for(tmp_path)
    provisioner.provision(req)
    writes_before = len(cluster.writes)
    versions = {
        o["metadata"]["name"] + o["kind"]: o["metadata"]["resourceVersion"]
        for o in cluster.labelled(f"{SERVICE_LABEL}={SERVICE}")
    }

    again = provisioner.provision(req)

    assert again.state == "Healthy"
    assert {o["action"] for o in again.objects} == {"unchanged"}
    assert len(cluster.writes) == writes_before
    assert versions == {
        o["metadata"]["name"] + o["kind"]: o["metadata"]["resourceVersion"]
        for o in cluster.labelled(f"{SERVICE_LABEL}={SERVICE}")
    }


def test_changed_bundle_is_configured_not_recreated(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    provisioner.provision(request_for(tmp_path))
    uid = cluster.get("deployments", SERVICE, f"{SERVICE}-vllm")["metadata"]["uid"]
    changed = request_for(tmp_path, vllm_image="vllm/vllm-openai:v0.6.4")
    outcome = provisioner.provision(changed)
    actions = {o["name"]: o["action"] for o in outcome.objects if o["kind"] == "Deployment"}
    assert actions[f"{SERVICE}-vllm"] == "configured"
    assert actions[f"{SERVICE}-api"] == "unchanged"
    live = cluster.get("deployments", SERVICE, f"{SERVICE}-vllm")
    assert live["metadata"]["uid"] == uid
    assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith("v0.6.4")


def test_reconciler_detects_drift_and_reports_it_in_the_catalog(
    provisioner: Provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    ref = register_service_entity(session_factory, SERVICE)
    provisioner.provision(request_for(tmp_path))
    assert provisioner.reconcile(SERVICE)["state"] == "Healthy"

    # Someone edits the vLLM image by hand and deletes the Qdrant Service.
    cluster.edit(
        "deployments",
        SERVICE,
        f"{SERVICE}-vllm",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:latest"}]}
                }
            }
        },
    )
    cluster.delete_object("services", SERVICE, f"{SERVICE}-qdrant")
    result = provisioner.reconcile(SERVICE)

    assert result["state"] == "Drifted" and result["changed"]
    by_name = {(o["kind"], o["name"]): o for o in result["objects"]}
    assert by_name[("Service", f"{SERVICE}-qdrant")]["state"] == "Missing"
    drift = by_name[("Deployment", f"{SERVICE}-vllm")]["drift"]
    assert any("image" in line and "latest" in line for line in drift)
    status = entity_status(session_factory, ref)["deployment"]
    assert status["state"] == "Drifted"
    # The catalog API filters on it (status.deployment.state=drifted).
    from catalog.service import CatalogService

    with session_scope(session_factory) as session:
        assert CatalogService(session).query_refs({"status.deployment.state": "Drifted"}) == [ref]

    # Re-provisioning puts it right; the reconciler sees Healthy again.
    provisioner.provision(request_for(tmp_path))
    assert provisioner.reconcile(SERVICE)["state"] == "Healthy"


def test_reconciler_reports_down_when_everything_is_gone(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    provisioner.provision(request_for(tmp_path))
    cluster.delete_object("namespaces", "", SERVICE)
    for plural in ("deployments", "statefulsets"):
        for obj in cluster.objects(plural, SERVICE):
            cluster.delete_object(plural, SERVICE, obj["metadata"]["name"])
    assert provisioner.reconcile(SERVICE)["state"] == "Down"


@pytest.mark.parametrize(
    ("fragment", "mode", "reason", "words"),
    [
        ("-vllm", "image-pull", "ImagePullBackOff", "Failed to pull image"),
        ("-vllm", "unschedulable-gpu", "Unschedulable", "Insufficient nvidia.com/gpu"),
        ("-api", "crash-loop", "CrashLoopBackOff", "Back-off restarting failed container"),
    ],
)
def test_failure_modes_report_the_object_and_the_clusters_reason(
    provisioner: Provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,
    session_factory,  # type: ignore[no-untyped-def]
    fragment: str,
    mode: str,
    reason: str,
    words: str,
) -> None:
    ref = register_service_entity(session_factory, SERVICE)
    cluster.behaviours[f"{SERVICE}{fragment}"] = mode
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(request_for(tmp_path))
    error = info.value
    assert error.reason == reason
    assert error.object == f"Deployment/{SERVICE}{fragment}"
    assert words in error.message
    status = entity_status(session_factory, ref)["deployment"]
    assert status["state"] == "Degraded"
    assert words in status["message"]
    failed = [o for o in status["objects"] if o["state"] == "Failed"]
    assert failed[0]["name"] == f"{SERVICE}{fragment}" and failed[0]["reason"] == reason
    # The reconciler keeps seeing it as failing (not silently Healthy).
    assert provisioner.reconcile(SERVICE)["state"] in ("Degraded", "Down")


def test_readiness_timeout_names_the_object(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    provisioner.settings.provision_ready_timeout_s = 0.3
    cluster.behaviours[f"{SERVICE}-qdrant"] = "pending"
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(request_for(tmp_path))
    assert info.value.reason == "Timeout"
    assert "StatefulSet/docs-bot-qdrant not ready after 0s" in info.value.message


def test_gpu_capacity_refusal_applies_nothing(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    # The only GPU node has 2 GPUs; 2 replicas x 2 GPUs do not fit.
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(request_for(tmp_path, gpus=2, vllm_replicas=2))
    assert info.value.reason == "Capacity"
    assert "not enough GPU capacity: 4 x nvidia.com/gpu needed" in info.value.message
    assert "allow the CPU fallback" in info.value.message
    assert cluster.writes == []


def test_gpu_class_is_part_of_the_capacity_check(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    req = request_for(tmp_path)
    req.gpu_class = "H100"
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(req)
    assert "0 node(s) of class H100" in info.value.message


def test_gpus_used_by_other_pods_are_not_free(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    cluster.add_node("gpu-1", gpus=2, labels={"nvidia.com/gpu.product": "NVIDIA-L4"})
    cluster._objects[("", "pods", "other", "train-0")] = {  # another team's training pod
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "train-0", "namespace": "other", "labels": {}},
        "spec": {
            "nodeName": "gpu-1",
            "containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
        "status": {"phase": "Running"},
    }
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(request_for(tmp_path))
    assert "gpu-1: 0" in info.value.message


def test_cpu_fallback_when_allowed(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path, logs: list[str]
) -> None:
    req = request_for(tmp_path, gpus=4)
    req.allow_cpu_fallback = True
    outcome = provisioner.provision(req)
    assert outcome.state == "Healthy"
    assert outcome.capacity and outcome.capacity["fits"] is False
    assert cluster.get("deployments", SERVICE, f"{SERVICE}-vllm")["spec"]["replicas"] == 0
    assert cluster.get("deployments", SERVICE, f"{SERVICE}-llm-cpu")["spec"]["replicas"] == 1
    assert any("using the CPU fallback" in line for line in logs)


def test_transient_errors_are_retried(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    cluster.faults += [
        Fault("PATCH", "/deployments/", status=500, times=2),
        Fault("PATCH", "/statefulsets/", status=429, times=1),
        Fault("GET", "/namespaces/docs-bot/services/", delay_s=3.0, times=1),  # > 2 s timeout
        Fault("PATCH", "/configmaps/", reset=True, times=1),
        Fault("GET", "/api/v1/nodes", status=503, times=1),
    ]
    outcome = provisioner.provision(request_for(tmp_path))
    assert outcome.state == "Healthy"
    assert [f.times for f in cluster.faults] == [0, 0, 0, 0, 0]
    assert outcome.retries >= 6, [r for r in cluster.requests if r[2] != 200]
    assert len(cluster.labelled(f"{SERVICE_LABEL}={SERVICE}")) == 15


def test_conflict_is_resolved_by_re_reading(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path, logs: list[str]
) -> None:
    cluster.faults.append(Fault("PATCH", "/deployments/docs-bot-api", status=409, times=1))
    assert provisioner.provision(request_for(tmp_path)).state == "Healthy"
    assert any("conflict" in line and "re-reading" in line for line in logs)


@pytest.mark.parametrize("status", [403, 422])
def test_permanent_errors_fail_with_the_api_message(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path, status: int
) -> None:
    message = f"deployments.apps is forbidden or invalid ({status}) says the API server"
    cluster.faults.append(Fault("PATCH", "/deployments/", status=status, message=message))
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(request_for(tmp_path))
    assert message in info.value.message
    assert f"({status})" in info.value.message
    assert cluster.faults[0].times == 0  # not retried: one call only


def test_teardown_leaves_nothing_labelled_and_is_idempotent(
    provisioner: Provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    ref = register_service_entity(session_factory, SERVICE)
    provisioner.provision(request_for(tmp_path))
    provisioner.provision(request_for(tmp_path, service="other-bot"))

    result = provisioner.teardown(SERVICE)

    assert cluster.labelled(f"{SERVICE_LABEL}={SERVICE}") == []
    assert result["remainingObjects"] == []
    assert "Namespace/docs-bot" in result["deletedObjects"]
    assert (
        ref in result["deletedEntities"] and "api:default/docs-bot-api" in result["deletedEntities"]
    )
    assert entity_status(session_factory, ref) is None
    assert provisioner.record(SERVICE) is None
    # The other service is untouched.
    assert len(cluster.labelled(f"{SERVICE_LABEL}=other-bot")) == 15
    # The service's ingest token no longer authenticates; its secrets are gone from the store.
    with session_scope(session_factory) as session:
        assert SecretStore(session, provisioner.settings).names(SERVICE) == []

    again = provisioner.teardown(SERVICE)
    assert again["deletedObjects"] == [] and again["deletedEntities"] == []


def test_no_cluster_records_the_plan(
    settings,
    session_factory,
    tmp_path: Path,
    logs: list[str],  # type: ignore[no-untyped-def]
) -> None:
    ref = register_service_entity(session_factory, SERVICE)
    planner = Provisioner(settings, session_factory, log=logs.append)
    outcome = planner.provision(request_for(tmp_path))
    assert outcome.state == "Planned" and outcome.cluster is None
    assert outcome.objects[0]["kind"] == "Namespace"
    assert outcome.objects[-1]["name"] == f"{SERVICE}-ingest"
    assert any("no Kubernetes cluster is configured, so nothing was applied" in m for m in logs)
    status = entity_status(session_factory, ref)["deployment"]
    assert status["state"] == "Planned" and len(status["objects"]) == 12
    assert planner.reconcile(SERVICE) is None  # nothing to compare against


def test_invalid_bundle_is_refused_with_every_problem(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    req = request_for(tmp_path)
    bad = req.bundle_dir / "base" / "99-bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: 1}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\nbogus: true\n"
    )
    kustomization = req.bundle_dir / "base" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("resources:\n", "resources:\n- 99-bad.yaml\n")
    )
    with pytest.raises(ProvisioningError) as info:
        provisioner.provision(req)
    assert "ConfigMap/x: data.a: 1 is not of type 'string'" in info.value.message
    assert "ConfigMap/y" in info.value.message and "bogus" in info.value.message
    assert cluster.writes == []


def test_missing_hf_token_is_a_clear_failure(
    k8s_settings,
    session_factory,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    bare = Provisioner(k8s_settings, session_factory)
    with pytest.raises(ProvisioningError) as info:
        bare.provision(request_for(tmp_path))
    assert "PUT /api/rag/secrets/hf-token" in info.value.message
    assert cluster.writes == []


def test_teardown_skips_kinds_the_cluster_does_not_serve_or_allow(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    provisioner.provision(request_for(tmp_path))
    cluster.faults += [
        Fault("GET", "/servicemonitors", status=403, times=10, message="forbidden"),
        Fault("GET", "/prometheusrules", status=404, times=10, message="no such API"),
    ]
    result = provisioner.teardown(SERVICE)
    assert result["remainingObjects"] == []
    assert cluster.labelled(f"{SERVICE_LABEL}={SERVICE}") == []


def test_progress_is_visible_while_a_workload_loads(
    provisioner: Provisioner, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    import threading
    import time

    cluster.behaviours[f"{SERVICE}-qdrant"] = "pending"  # e.g. a volume still attaching
    provisioner.settings.provision_ready_timeout_s = 30
    results: list = []
    worker = threading.Thread(
        target=lambda: results.append(provisioner.provision(request_for(tmp_path)))
    )
    worker.start()
    deadline = time.monotonic() + 20
    while (provisioner.record(SERVICE) or {}).get("state") != "Progressing" or not cluster.get(
        "statefulsets", SERVICE, f"{SERVICE}-qdrant"
    ):
        assert time.monotonic() < deadline, "never saw Progressing"
        time.sleep(0.02)
    ready = {"replicas": 1, "readyReplicas": 1, "currentReplicas": 1}
    cluster.set_status("statefulsets", SERVICE, f"{SERVICE}-qdrant", ready)
    worker.join(timeout=30)
    assert results and results[0].state == "Healthy"
    assert provisioner.record(SERVICE)["state"] == "Healthy"


def test_reconciler_records_live_replicas_that_cost_accrues_on(
    provisioner: Provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    """An HPA scales the API out: the reconciler records the live pod count, and the SLA
    cost model prices the pods that run, not the ones the bundle asked for."""
    from portal_backend.provisioning.models import ProvisionedService
    from portal_backend.sla.resources import desired_rate

    register_service_entity(session_factory, SERVICE)
    provisioner.provision(request_for(tmp_path))
    provisioner.reconcile(SERVICE)

    def api_rate() -> tuple[int, float]:
        with session_scope(session_factory) as session:
            row = session.query(ProvisionedService).filter_by(service=SERVICE).one()
            live = {(o["kind"], o["name"]): o.get("replicas") for o in row.detail}
            rate = desired_rate(row.desired, row.detail, {"cpu_core_hour": 1.0}, "L4")
        return live[("Deployment", f"{SERVICE}-api")], rate.cpu

    replicas_before, cpu_before = api_rate()
    live = cluster.get("deployments", SERVICE, f"{SERVICE}-api")
    assert live is not None
    cluster.set_status(
        "deployments",
        SERVICE,
        f"{SERVICE}-api",
        {**live["status"], "replicas": replicas_before + 3, "readyReplicas": replicas_before + 3},
    )
    result = provisioner.reconcile(SERVICE)
    assert result["changed"]
    replicas_after, cpu_after = api_rate()
    assert replicas_after == replicas_before + 3
    assert cpu_after > cpu_before
