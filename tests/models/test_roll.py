"""Rolling a service to another adapter version, and back: a service created through the
real rag-service template (published to a local repository, provisioned to the
Kubernetes emulator), then rolled with the real scaffolder, in-process.

What must hold: a version that does not fit (rank above --max-lora-rank, another base
model) is refused naming both sides before anything changes (no task, no commit); a
roll on a branch leaves the default branch alone; a roll on the default branch commits,
re-provisions and shows on the entity; a rollback is the same roll to the old version.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog.errors import ConflictError
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.git_hosts import local_repos
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.rag import rollout
from portal_backend.scaffolder import engine, store
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.settings import Settings
from tests.models.adapters import adapter_entity, model_entity

NAME = "hr-bot"
REF = f"component:default/{NAME}"
MODULES = ["q_proj", "v_proj"]
BASE = "resource:default/llama-3-8b-v1"

# One database is enough for a test this heavy: the production one.
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _catalog() -> list[dict[str, Any]]:
    def adapter(version: str, rank: int, base: str = BASE, family: str = "hr-adapter") -> dict:
        return adapter_entity(
            f"{family}-v{version}", version, f"/srv/adapters/{family}/{version}", rank=rank,
            alpha=2 * rank, modules=MODULES, base=base,
        )  # fmt: skip

    return [
        {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Group",
            "metadata": {"name": "team-a"},
            "spec": {"type": "team", "children": []},
        },
        model_entity("llama-3-8b-v1", "1", "meta-llama/Meta-Llama-3-8B-Instruct"),
        model_entity("llama-3-70b-v1", "1", "meta-llama/Meta-Llama-3-70B-Instruct"),
        model_entity("llama-3-8b-v2", "2", "/models/llama-3-8b-v2", previous=BASE),
        adapter("2", 16),
        adapter("3", 16),
        adapter("4", 64),
        adapter("1", 16, base="resource:default/llama-3-70b-v1", family="legal-adapter"),
    ]


def _run(settings: Settings, factory, task_id: str, queue: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    while queue:
        engine.run_next_step(settings, factory, queue.pop(0), "worker-1", queue.append)
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        assert task is not None
        steps = {s.step_id: (s.status, s.output) for s in store.get_steps(session, task_id)}
        log = [e.body.get("message", "") for e in store.list_events(session, task_id, None)]
        return {"status": task.status, "steps": steps, "log": log}


def _git(bare: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(bare), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def service(k8s_settings: Settings, session_factory) -> Settings:  # type: ignore[no-untyped-def]
    """hr-bot, created by the real template with adapter hr-adapter v2 (rank 16 slots)."""
    k8s_settings = k8s_settings.model_copy(update={"image_registry": "registry.example.test/rag"})
    register_shipped_templates(k8s_settings, session_factory)
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_catalog())
        SecretStore(session, k8s_settings).set(GLOBAL, "hf-token", "hf_never_used_here")
    queue: list[str] = []
    task_id = engine.submit(
        k8s_settings,
        session_factory,
        template_ref="template:default/rag-service",
        values={
            "name": NAME,
            "owner": "group:default/team-a",
            "cpu_fallback_enabled": False,
            "lora_adapters": [
                {"name": "hr-adapter", "source": "/srv/adapters/hr-adapter/2", "rank": 16}
            ],
        },
        secrets=None,
        user_ref="user:default/alice",
        dispatch=queue.append,
    )
    result = _run(k8s_settings, session_factory, task_id, queue)
    assert result["status"] == "completed", result
    return k8s_settings


def _roll(settings: Settings, factory, version: str, default: bool) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    queue: list[str] = []
    task_id, _plan = rollout.submit_roll(
        settings,
        factory,
        entity_ref=REF,
        version=version,
        on_default_branch=default,
        target="auto",
        cluster=None,
        environment=None,
        user_ref="user:default/alice",
        dispatch=queue.append,
    )
    return _run(settings, factory, task_id, queue)


def test_roll_refuse_branch_default_and_back(
    service: Settings,
    cluster,
    session_factory,
    admin_client,  # type: ignore[no-untyped-def]
) -> None:  # type: ignore[no-untyped-def]
    settings = service
    bare = local_repos.repo_path(settings, "team-a", NAME)
    main_before = _git(bare, "rev-parse", "main").strip()
    args = json.loads(_git(bare, "show", "main:serving/vllm-args.json"))
    assert args[args.index("--max-lora-rank") + 1] == "16"
    # The create named the versions it serves (rag:catalog-versions: the model by its
    # checkpoint, the adapter by its source).
    created = list(yaml.safe_load_all(_git(bare, "show", "main:catalog-info.yaml")))
    assert created[0]["spec"]["dependsOn"][3:] == [BASE, "resource:default/hr-adapter-v2"]

    # Refused before anything changes, naming both sides: no task, no commit.
    with pytest.raises(ConflictError) as rank:
        _roll(settings, session_factory, "resource:default/hr-adapter-v4", default=True)
    assert "hr-adapter-v4 has rank 64, but service hr-bot was sized for LoRA rank at most 16" in (
        rank.value.message
    )
    with pytest.raises(ConflictError) as base:
        _roll(settings, session_factory, "resource:default/legal-adapter-v1", default=True)
    assert "trained on resource:default/llama-3-70b-v1" in base.value.message
    assert (
        f"service hr-bot serves {BASE} (meta-llama/Meta-Llama-3-8B-Instruct)" in base.value.message
    )
    response = admin_client.post(
        f"/api/rag/services/default/{NAME}/roll",
        json={"version": "resource:default/hr-adapter-v4", "onDefaultBranch": True},
    )
    assert response.status_code == 409 and "rank 64" in response.json()["error"]["message"]
    assert _git(bare, "rev-parse", "main").strip() == main_before
    assert _git(bare, "branch", "--list", "rag-portal/roll-*").strip() == ""
    with session_scope(session_factory) as session:
        _tasks, count = store.list_tasks(session, created_by=None, status=None, limit=9, offset=0)
    assert count == 1  # the create only: a refused roll submits no task

    # On a branch: the default branch stays, the branch has the new source.
    done = _roll(settings, session_factory, "resource:default/hr-adapter-v3", default=False)
    assert done["status"] == "completed", done
    assert done["steps"]["provision"][0] == "skipped"
    branch = "rag-portal/roll-hr-adapter-v3"
    assert _git(bare, "rev-parse", "main").strip() == main_before
    rolled = json.loads(_git(bare, "show", f"{branch}:serving/vllm-args.json"))
    assert "hr-adapter=/srv/adapters/hr-adapter/3" in rolled
    assert "hr-adapter=/srv/adapters/hr-adapter/2" not in rolled
    assert "resource:default/hr-adapter-v3" in _git(bare, "show", f"{branch}:catalog-info.yaml")
    assert "Rag-Portal-Roll: resource:default/hr-adapter-v3" in _git(
        bare, "log", "-1", "--format=%B", branch
    )

    # On the default branch: committed, re-provisioned from that commit, on the entity.
    done = _roll(settings, session_factory, "resource:default/hr-adapter-v3", default=True)
    assert done["status"] == "completed", done
    assert done["steps"]["provision"][0] == "completed"
    head = _git(bare, "rev-parse", "main").strip()
    assert head != main_before and done["steps"]["roll"][1]["commit"] == head
    deployed = cluster.get("deployments", NAME, f"{NAME}-vllm")
    assert deployed is not None
    assert (
        "hr-adapter=/srv/adapters/hr-adapter/3"
        in deployed["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    with session_scope(session_factory) as session:
        entity = CatalogService(session).get_by_ref(REF)
    assert entity is not None
    assert "resource:default/hr-adapter-v3" in entity["spec"]["dependsOn"]
    switches = entity["status"]["modelVersions"]["switches"]
    assert [(s["from"], s["to"], s["onDefaultBranch"]) for s in switches] == [
        ("resource:default/hr-adapter-v2", "resource:default/hr-adapter-v3", True),
        ("resource:default/hr-adapter-v2", "resource:default/hr-adapter-v3", False),
    ]
    users = admin_client.get(
        "/api/catalog/entities/by-query",
        params={"filter": "relations.dependsOn=resource:default/hr-adapter-v3"},
    ).json()
    assert [e["metadata"]["name"] for e in users["items"]] == [NAME]

    # Rollback: the same roll to the previous version.
    done = _roll(settings, session_factory, "resource:default/hr-adapter-v2", default=True)
    assert done["status"] == "completed", done
    back = json.loads(_git(bare, "show", "main:serving/vllm-args.json"))
    assert "hr-adapter=/srv/adapters/hr-adapter/2" in back
    deployed = cluster.get("deployments", NAME, f"{NAME}-vllm")
    assert (
        "hr-adapter=/srv/adapters/hr-adapter/2"
        in deployed["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    info = list(yaml.safe_load_all(_git(bare, "show", "main:catalog-info.yaml")))
    assert "resource:default/hr-adapter-v2" in info[0]["spec"]["dependsOn"]
    assert "resource:default/hr-adapter-v3" not in info[0]["spec"]["dependsOn"]
    with session_scope(session_factory) as session:
        entity = CatalogService(session).get_by_ref(REF)
    assert entity is not None
    last = entity["status"]["modelVersions"]["switches"][0]
    assert (last["from"], last["to"]) == (
        "resource:default/hr-adapter-v3",
        "resource:default/hr-adapter-v2",
    )
    assert entity["status"]["modelVersions"]["serving"] == {
        "hr-adapter": "resource:default/hr-adapter-v2"
    }

    # A new base model version is refused while an adapter trained on the old one is
    # served, naming both; nothing changes.
    head = _git(bare, "rev-parse", "main").strip()
    with pytest.raises(ConflictError) as stranded:
        _roll(settings, session_factory, "resource:default/llama-3-8b-v2", default=True)
    assert (
        "also serves resource:default/hr-adapter-v2 (trained on resource:default/llama-3-8b-v1)"
        ", which would not fit resource:default/llama-3-8b-v2"
    ) in stranded.value.message
    assert _git(bare, "rev-parse", "main").strip() == head
