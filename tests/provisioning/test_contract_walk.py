"""The contract walk: one service from the form to the cluster, every link checked.

A service with the options that broke before (AWQ on H100, a LoRA adapter, the CPU
fallback) goes through the real scaffolder (every step, in-process) with an operator's
settings (portal address, image registry) and an admin's price table, then rag:provision
applies it to the Kubernetes emulator. What the cluster then holds must work on a real
one, link by link:

- every URL a container is given points at a Service in its namespace that exposes
  that port, or at the portal, which answers there;
- every Secret and ConfigMap a pod references exists, with the keys it reads;
- every image of the repository is one its CI builds and pushes, with the tag applied;
- the vLLM arguments are ones vLLM 0.10.1.1 starts with (its own source, vendored);
- the API routes exactly the adapters vLLM loads, within the slots sizing made;
- the generated cost rules price the GPU as the portal's price table does.

The emulator marks workloads ready, so nothing here depends on a pod running: each link
is read off the objects a real cluster would get.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.images import ci_pushed_images
from portal_backend.provisioning.plan import pod_spec
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.provisioning.workload_env import container_environment, find_workload
from portal_backend.rag.checkpoints import checkpoint_for
from portal_backend.scaffolder import engine, store
from portal_backend.settings import Settings
from portal_backend.sla import costs
from portal_backend.sla.clock import utcnow
from tests.conftest import start_live_server
from tests.deploy_bundle.test_vllm_contract import vllm_problems
from tests.k8s_emulator import EmulatedCluster

NAME = "walk-bot"
ADAPTER, RANK = "legal-tone", 32
H100_PRICE = 7.25  # the admin's, not a default
REGISTRY = "registry.example.test/rag"

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _run(settings: Settings, factory) -> str:  # type: ignore[no-untyped-def]
    queue: list[str] = []
    task_id = engine.submit(
        settings,
        factory,
        template_ref="template:default/rag-service",
        values={
            "name": NAME,
            "owner": "group:default/team-a",
            "model": "llama-3-8b-instruct",
            "quantization": "awq",
            "gpu_class": "H100",
            "cpu_fallback_enabled": True,
            "lora_adapters": [{"name": ADAPTER, "source": "acme/legal-tone", "rank": RANK}],
        },
        secrets=None,
        user_ref="user:default/alice",
        dispatch=queue.append,
    )
    while queue:
        engine.run_next_step(settings, factory, queue.pop(0), "worker-1", queue.append)
    return task_id


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj) or {}
    return (spec.get("containers") or []) + (spec.get("initContainers") or [])


def test_one_service_from_the_form_to_the_cluster_every_link_holds(  # type: ignore[no-untyped-def]
    k8s_settings: Settings, session_factory, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    live, server, thread = start_live_server(k8s_settings)
    settings = k8s_settings.model_copy(
        update={"service_portal_url": live.url, "image_registry": REGISTRY}
    )
    try:
        with session_scope(session_factory) as session:
            CatalogService(session).upsert_entities(
                [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
                  "metadata": {"name": "team-a"}, "spec": {"type": "team", "children": []}}]
            )  # fmt: skip
            SecretStore(session, settings).set(GLOBAL, "hf-token", "hf_walk")
            costs.set_prices(
                session, {**costs.DEFAULT_PRICES, "gpu:nvidia-h100": H100_PRICE}, utcnow(), "admin"
            )
        task_id = _run(settings, session_factory)
        with session_scope(session_factory) as session:
            task = store.get_task(session, task_id)
            outputs = {s.step_id: s.output for s in store.get_steps(session, task_id)}
            assert task is not None and task.status == "completed", outputs
        repo = tmp_path / "repo"
        subprocess.run(
            ["git", "clone", "-q", outputs["publish"]["remoteUrl"], str(repo)], check=True
        )
        objects = cluster.labelled(f"{SERVICE_LABEL}={NAME}")
        by_kind: dict[str, dict[str, dict[str, Any]]] = {}
        for obj in objects:
            by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
        workloads = [
            o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
        ]
        problems: list[str] = []

        # 1. Addresses: a Service of the namespace with that port, or the live portal.
        services = by_kind.get("Service", {})
        for workload in workloads:
            ref = f"{workload['kind']}/{workload['metadata']['name']}"
            for container in _containers(workload):
                env = container_environment(objects, workload, container=container["name"])
                for var, value in env.values.items():
                    if not re.match(r"^https?://", value):
                        continue
                    url = urlparse(value)
                    if value.rstrip("/") == live.url:
                        if httpx.get(f"{live.url}/readyz").status_code != 200:
                            problems.append(f"{ref} {var}: the portal does not answer at {value}")
                        continue
                    host = (url.hostname or "").split(".")[0]
                    service = services.get(host)
                    ports = {p["port"] for p in (service or {}).get("spec", {}).get("ports", [])}
                    if service is None or (url.port or 80) not in ports:
                        problems.append(f"{ref} {var}={value}: no Service {host} with that port")
                if container["name"] == "rag-api":
                    assert env.values["RAGPORTAL_URL"] == live.url

        # 2. Every referenced Secret/ConfigMap key exists.
        for workload in workloads:
            ref = f"{workload['kind']}/{workload['metadata']['name']}"
            spec = pod_spec(workload) or {}
            for container in _containers(workload):
                for item in container.get("env") or []:
                    for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                        source = (item.get("valueFrom") or {}).get(key)
                        if not source or source.get("optional"):
                            continue
                        found = by_kind.get(kind, {}).get(source["name"])
                        data = {
                            **(found or {}).get("data", {}),
                            **(found or {}).get("stringData", {}),
                        }
                        if source["key"] not in data:
                            problems.append(
                                f"{ref}: {kind} {source['name']} has no {source['key']}"
                            )
                for item in container.get("envFrom") or []:
                    for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                        source = item.get(key)
                        if (
                            source
                            and not source.get("optional")
                            and source["name"] not in by_kind.get(kind, {})
                        ):
                            problems.append(f"{ref}: no {kind} {source['name']}")
            for volume in spec.get("volumes") or []:
                if "secret" in volume and volume["secret"]["secretName"] not in by_kind.get(
                    "Secret", {}
                ):
                    problems.append(f"{ref}: no Secret {volume['secret']['secretName']}")

        # 3. The repository's images are what its CI pushes for the deployed commit.
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        pushed = {image.replace("<commit>", commit) for image in ci_pushed_images(repo)}
        own = [
            c["image"]
            for w in workloads
            for c in _containers(w)
            if c["image"].startswith(REGISTRY) or f"/{NAME}-" in c["image"]
        ]
        assert own, "the repository's own images are not deployed"
        for image in own:
            if image not in pushed:
                problems.append(f"{image} is not an image the repository's CI pushes ({pushed})")

        # 4. vLLM starts with these arguments (its own argument definitions).
        vllm = find_workload(objects, "model-server")
        args = _containers(vllm)[0]["args"]
        checkpoint = checkpoint_for("llama-3-8b-instruct", "awq")
        problems += [f"vLLM: {p}" for p in vllm_problems(args, checkpoint, ["H100"])]

        # 5. The API routes exactly the adapters vLLM loads, within the sized slots.
        api_env = container_environment(objects, find_workload(objects, "api"))
        routed = json.loads(api_env.values["LORA_ADAPTERS"])
        loaded = [m.split("=")[0] for m in args[args.index("--lora-modules") + 1 :] if "=" in m]
        if routed != loaded:
            problems.append(f"API routes adapters {routed}, vLLM loads {loaded}")
        if int(args[args.index("--max-loras") + 1]) < len(loaded):
            problems.append("--max-loras is below the adapters loaded")
        if int(args[args.index("--max-lora-rank") + 1]) < RANK:
            problems.append(f"--max-lora-rank is below the adapter's rank {RANK}")

        # 6. One price table: the generated rules price the GPU-hour as the portal does.
        rules = yaml.safe_load((repo / "monitoring" / "prometheus-rules.yaml").read_text())
        expressions = " ".join(
            r.get("expr", "") for g in rules["groups"] for r in g.get("rules", [])
        )
        if str(H100_PRICE) not in expressions:
            problems.append(f"the cost rules do not price H100 at the portal's {H100_PRICE}")

        assert problems == [], "\n".join(problems)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
