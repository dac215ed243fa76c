"""A small deploy/k8s bundle shaped like the generated one (base + dev/prod overlays).

Used where the test needs control over the bundle (GPU counts, images); the real
generated bundle is exercised by test_generated_bundle.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def _meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": {"app.kubernetes.io/component": component}}


def _deployment(
    name: str,
    component: str,
    image: str,
    *,
    replicas: int = 1,
    gpus: int = 0,
    env: list[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    if gpus:
        resources["limits"]["nvidia.com/gpu"] = str(gpus)
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
    pod: dict[str, Any] = {
        "containers": [
            {
                "name": component,
                "image": image,
                "ports": [{"containerPort": 8000, "name": "http"}],
                "resources": resources,
                "env": env or [],
            }
        ]
    }
    if node_selector:
        pod["nodeSelector"] = node_selector
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def _service(name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, component),
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def bundle_objects(
    service: str, *, gpus: int = 1, vllm_replicas: int = 1, vllm_image: str | None = None
) -> list[dict[str, Any]]:
    secret_env = [
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": f"{service}-hf-token", "key": "token"}},
        },
    ]
    api_env = [
        {
            "name": "QDRANT_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": f"{service}-qdrant", "key": "api-key"}},
        },
        {
            "name": "RAG_PORTAL_INGEST_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": f"{service}-portal", "key": "ingest-token"}},
        },
    ]
    qdrant_labels = {"app.kubernetes.io/name": f"{service}-qdrant"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": service}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{service}-config", "api"),
            "data": {"MODEL": "llama-3-8b-instruct"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(f"{service}-hf-cache", "vllm"),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "50Gi"}},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta(f"{service}-qdrant", "qdrant"),
            "spec": {
                "serviceName": f"{service}-qdrant",
                "replicas": 1,
                "selector": {"matchLabels": qdrant_labels},
                "template": {
                    "metadata": {"labels": qdrant_labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "qdrant",
                                "image": "qdrant/qdrant:v1.12.4",
                                "env": [
                                    {
                                        "name": "QDRANT__SERVICE__API_KEY",
                                        "valueFrom": {
                                            "secretKeyRef": {
                                                "name": f"{service}-qdrant",
                                                "key": "api-key",
                                            }
                                        },
                                    }
                                ],
                                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                            }
                        ]
                    },
                },
            },
        },
        _service(f"{service}-qdrant", "qdrant"),
        _deployment(
            f"{service}-vllm",
            "vllm",
            vllm_image or "vllm/vllm-openai:v0.6.3",
            replicas=vllm_replicas,
            gpus=gpus,
            env=secret_env,
        ),
        _service(f"{service}-vllm", "vllm"),
        _deployment(
            f"{service}-llm-cpu",
            "llm-cpu-fallback",
            "ghcr.io/ggerganov/llama.cpp:server",
            replicas=0,
        ),
        _deployment(f"{service}-api", "api", f"registry.local/{service}-api:0.1.0", env=api_env),
        _service(f"{service}-api", "api"),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(f"{service}-api", "api"),
            "spec": {
                "minAvailable": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": f"{service}-api"}},
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _meta(f"{service}-ingest", "ingestion"),
            "spec": {
                "backoffLimit": 2,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "ingest",
                                "image": f"registry.local/{service}-api:0.1.0",
                                "args": ["ingest"],
                                "env": api_env,
                            }
                        ],
                    }
                },
            },
        },
    ]


def write_bundle(root: Path, service: str, **kwargs: Any) -> Path:
    """Write ``<root>/deploy/k8s`` (base + overlays dev/prod); returns the k8s folder."""
    k8s = root / "deploy" / "k8s"
    base = k8s / "base"
    base.mkdir(parents=True, exist_ok=True)
    files = []
    for i, obj in enumerate(bundle_objects(service, **kwargs)):
        name = f"{i:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        (base / name).write_text(yaml.safe_dump(obj, sort_keys=False))
        files.append(name)
    (base / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": service,
                "labels": [
                    {
                        "pairs": {
                            "rag-portal.io/service": service,
                            "app.kubernetes.io/part-of": service,
                        }
                    }
                ],
                "resources": files,
            }
        )
    )
    for env, api_replicas in (("dev", 1), ("prod", 2)):
        overlay = k8s / "overlays" / env
        overlay.mkdir(parents=True, exist_ok=True)
        (overlay / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["../../base"],
                    "commonAnnotations": {"rag-portal.io/environment": env},
                    "patches": [
                        {
                            "target": {"kind": "Deployment", "name": f"{service}-api"},
                            "patch": yaml.safe_dump(
                                {
                                    "apiVersion": "apps/v1",
                                    "kind": "Deployment",
                                    "metadata": {"name": f"{service}-api"},
                                    "spec": {"replicas": api_replicas},
                                }
                            ),
                        }
                    ],
                }
            )
        )
    return k8s
