"""Every generated Kubernetes object: schema-valid for 1.29-1.33, labelled, resourced,
pinned, secret-free, and carrying what the form and the sizing asked for."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from .conftest import K8S_VERSIONS, OVERLAYS, Rendered

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if "template" in spec:
        return spec["template"]["spec"]
    return None


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def raw_manifests(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted((root / "deploy" / "k8s" / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend((path, d) for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas() -> Iterator[None]:
    """kubernetes-validate re-reads its JSON schema files on every call; the files do not
    change during a run, so memoize the reads (8x faster, same validation)."""
    original = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(original)
    yield
    kubernetes_validate.utils.schema_contents = original


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(rendered: Rendered, version: str) -> None:
    """The base files as written and both overlays as rendered."""
    objects = [(str(p.name), d) for p, d in raw_manifests(rendered.root)]
    for env in OVERLAYS:
        objects += [(f"overlay {env}", d) for d in rendered.overlay(env)]
    assert len(objects) > 40
    problems = []
    for origin, obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{origin} {obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert problems == []


def test_labels_namespace_resources_and_no_secret_values(rendered: Rendered) -> None:
    name = rendered.name
    for env in OVERLAYS:
        for obj in rendered.overlay(env):
            where = f"{env} {obj['kind']}/{obj['metadata']['name']}"
            labels = obj["metadata"].get("labels", {})
            assert labels.get("rag-portal.io/service") == name, where
            assert all(key in labels for key in LABELS), where
            assert labels["rag-portal.io/environment"] == env, where
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == name, where
            # Secrets are only referenced, never shipped.
            assert obj["kind"] != "Secret", where
            spec = pod_spec(obj)
            if spec is not None:
                template_labels = (
                    obj["spec"]["jobTemplate"]["spec"]["template"]
                    if obj["kind"] == "CronJob"
                    else obj["spec"]["template"]
                )["metadata"]["labels"]
                assert template_labels["rag-portal.io/service"] == name, where
            for container in containers(obj):
                resources = container.get("resources", {})
                assert resources.get("requests") and resources.get("limits"), (
                    f"{where} container {container['name']} lacks requests/limits"
                )
                image = container["image"]
                assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
                for value in env_of(container).values():
                    if isinstance(value, dict) and "secretKeyRef" in value:
                        ref = value["secretKeyRef"]
                        assert (ref["name"], ref["key"]) in {
                            (f"{name}-hf-token", "token"),
                            (f"{name}-qdrant", "api-key"),
                            (f"{name}-portal-ingest", "token"),
                        }, where


def _vllm(rendered: Rendered, env: str = "prod") -> dict[str, Any]:
    return rendered.by_kind(env, "Deployment")[f"{rendered.name}-vllm"]


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_vllm_deployment_follows_the_form_and_the_sizing(rendered: Rendered) -> None:
    case, sizing = rendered.case, rendered.sizing
    deployment = _vllm(rendered)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert container["image"] == "vllm/vllm-openai:v0.10.1.1"
    assert _flag(args, "--model") == rendered.context["model_hf_id"]
    assert _flag(args, "--served-model-name") == case.model
    assert _flag(args, "--max-model-len") == str(sizing.max_model_len)
    assert _flag(args, "--gpu-memory-utilization") == str(sizing.gpu_memory_utilization)
    assert _flag(args, "--tensor-parallel-size") == str(sizing.tensor_parallel_size)
    assert _flag(args, "--kv-cache-dtype") == sizing.kv_cache_dtype
    expected_quant = {"bf16": None, "fp8": "fp8", "awq": "awq_marlin", "gptq": "gptq_marlin"}
    assert _flag(args, "--quantization") == expected_quant[case.quantization]
    if case.loras:
        assert "--enable-lora" in args
        assert _flag(args, "--max-loras") == str(len(case.loras))
        start = args.index("--lora-modules") + 1
        assert args[start : start + len(case.loras)] == [f"{n}={s}" for n, s in case.loras]
    else:
        assert "--enable-lora" not in args and "--lora-modules" not in args
    gpus = str(sizing.gpus)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert deployment["spec"]["replicas"] == int(rendered.context.get("replicas", "1"))
    # Secrets by reference; /dev/shm in memory; the HF cache on a PVC.
    assert env_of(container)["HF_TOKEN"] == {
        "secretKeyRef": {"name": f"{rendered.name}-hf-token", "key": "token"}
    }
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    claim = volumes[mounts["/models/huggingface"]]["persistentVolumeClaim"]["claimName"]
    assert claim in rendered.by_kind("prod", "PersistentVolumeClaim")
    # Probes on /health; the startup budget covers loading the model.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    startup = container["startupProbe"]
    budget_s = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget_s >= (3600 if "70b" in case.model else 1200)


def test_cpu_fallback_scaled_by_the_setting(rendered: Rendered) -> None:
    enabled = rendered.context.get("cpu_fallback_enabled", "true") == "true"
    deployment = rendered.by_kind("prod", "Deployment")[f"{rendered.name}-llamacpp"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == (1 if enabled else 0)
    assert container["image"].startswith("ghcr.io/ggerganov/llama.cpp:server-b")
    assert _flag(container["args"], "--hf-file").endswith(".gguf")
    config = rendered.by_kind("prod", "ConfigMap")[f"{rendered.name}-config"]["data"]
    expected = f"http://{rendered.name}-llamacpp:8080/v1" if enabled else ""
    assert config["FALLBACK_LLM_BASE_URL"] == expected


def test_qdrant_statefulset_and_collection_bootstrap(rendered: Rendered) -> None:
    name, replicas = rendered.name, rendered.case.qdrant_replicas
    statefulset = rendered.by_kind("prod", "StatefulSet")[f"{name}-qdrant"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert statefulset["spec"]["replicas"] == replicas
    assert container["image"] == "qdrant/qdrant:v1.15.1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert env_of(container)["QDRANT__SERVICE__API_KEY"] == {
        "secretKeyRef": {"name": f"{name}-qdrant", "key": "api-key"}
    }
    assert env_of(container)["QDRANT__CLUSTER__ENABLED"] == str(replicas > 1).lower()
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    bootstrap = rendered.by_kind("prod", "ConfigMap")[f"{name}-qdrant-bootstrap"]["data"]
    collection = json.loads(bootstrap["collection.json"])
    assert collection["vectors"] == {"size": 384, "distance": "Cosine", "on_disk": False}
    assert collection["hnsw_config"] == {"m": 16, "ef_construct": 100, "on_disk": False}
    # Hybrid retrieval's BM25 sparse vector, IDF computed by the server (app/lexical.py).
    assert collection["sparse_vectors"] == {"lexical": {"modifier": "idf"}}
    assert collection["quantization_config"]["scalar"]["type"] == "int8"
    if replicas > 1:
        assert collection["shard_number"] == replicas
        assert collection["replication_factor"] == 2
        assert "--bootstrap" in container["args"][0]
    else:
        assert "shard_number" not in collection and "replication_factor" not in collection
    job = rendered.by_kind("prod", "Job")[f"{name}-qdrant-bootstrap"]
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == f"{name}-qdrant-bootstrap"


def test_rag_api_and_ingestion(rendered: Rendered) -> None:
    name = rendered.name
    api = rendered.by_kind("prod", "Deployment")[f"{name}-rag-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = rendered.by_kind("prod", "Service")[f"{name}-rag-api"]
    assert service["spec"]["ports"][0]["port"] == 8080
    hpa = rendered.by_kind("prod", "HorizontalPodAutoscaler")[f"{name}-rag-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{name}-rag-api"
    assert hpa["spec"]["minReplicas"] >= 2
    assert f"{name}-rag-api" in rendered.by_kind("prod", "PodDisruptionBudget")
    dev_hpa = rendered.by_kind("dev", "HorizontalPodAutoscaler")[f"{name}-rag-api"]
    assert dev_hpa["spec"]["minReplicas"] == 1

    shards = int(rendered.context.get("ingestion_shards", "2"))
    job = rendered.by_kind("prod", "Job")[f"{name}-ingestion"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == shards
    cron = rendered.by_kind("prod", "CronJob")[f"{name}-ingestion"]
    assert cron["spec"]["jobTemplate"]["spec"]["completionMode"] == "Indexed"
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert rendered.by_kind("dev", "CronJob")[f"{name}-ingestion"]["spec"]["suspend"] is True


def test_app_settings_read_every_variable_the_bundle_sets(rendered: Rendered) -> None:
    """The ConfigMap's keys are fields of the generated app's Settings (pydantic-settings)."""
    settings_py = (rendered.root / "app" / "settings.py").read_text()
    config = rendered.by_kind("prod", "ConfigMap")[f"{rendered.name}-config"]["data"]
    api = rendered.by_kind("prod", "Deployment")[f"{rendered.name}-rag-api"]
    names = set(config) | set(env_of(api["spec"]["template"]["spec"]["containers"][0]))
    for variable in sorted(names):
        assert f"\n    {variable.lower()}:" in settings_py, f"app/settings.py has no {variable}"


def test_network_policies_let_only_the_api_reach_the_model_servers(rendered: Rendered) -> None:
    name = rendered.name
    policies = rendered.by_kind("prod", "NetworkPolicy")
    deny = policies[f"{name}-default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}

    def sources(policy: str) -> list[dict[str, Any]]:
        return [peer for rule in policies[policy]["spec"]["ingress"] for peer in rule["from"]]

    def components(peers: list[dict[str, Any]]) -> set[str]:
        return {
            p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for p in peers
            if "podSelector" in p
        }

    assert components(sources(f"{name}-allow-vllm")) == {"api"}
    assert components(sources(f"{name}-allow-llamacpp")) == {"api"}
    assert components(sources(f"{name}-allow-qdrant")) == {
        "api",
        "ingestion",
        "vector-store-bootstrap",
        "vector-store",
    }
