"""An adapter whose base model differs from the service's model, or whose rank exceeds
the LoRA slots the service was sized for, is refused before anything changes, naming
both sides (the service's serving/vllm-args.json, as the rag-service template writes it)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from catalog.errors import ConflictError
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.git_hosts import local_repos
from portal_backend.rag import adapters
from portal_backend.rag.adapters import ServingSlots
from tests.models.adapters import adapter_entity, model_entity

MODULES = ["q_proj", "v_proj"]


def vllm_args(model: str, served: str, max_rank: int | None) -> list[str]:
    args = ["--model", model, "--served-model-name", served, "--max-model-len", "8192"]
    if max_rank is not None:
        args += ["--enable-lora", "--max-loras", "2", "--max-lora-rank", str(max_rank)]
        args += ["--lora-modules", "hr=/srv/adapters/hr/v2"]
    return [*args, "--kv-cache-dtype", "auto"]


def _catalog() -> list[dict[str, Any]]:
    return [
        model_entity("llama-3-8b-v1", "1", "meta-llama/Meta-Llama-3-8B-Instruct"),
        model_entity("llama-3-70b-v1", "1", "meta-llama/Meta-Llama-3-70B-Instruct"),
        adapter_entity(
            "hr-adapter-v2", "2", "/srv/a/2", rank=16, alpha=32, modules=MODULES,
            base="resource:default/llama-3-8b-v1",
        ),
        adapter_entity(
            "hr-adapter-v3", "3", "/srv/a/3", rank=64, alpha=64, modules=MODULES,
            base="resource:default/llama-3-8b-v1", previous="resource:default/hr-adapter-v2",
        ),
        adapter_entity(
            "legal-adapter-v1", "1", "/srv/l/1", rank=16, alpha=32, modules=MODULES,
            base="resource:default/llama-3-70b-v1",
        ),
    ]  # fmt: skip


def test_slots_from_the_templates_vllm_args() -> None:
    slots = ServingSlots.from_vllm_args(
        "hr-bot", vllm_args("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b-instruct", 16)
    )
    assert (slots.model, slots.max_lora_rank, slots.max_loras) == (
        "meta-llama/Meta-Llama-3-8B-Instruct",
        16,
        2,
    )
    assert ServingSlots.from_vllm_args("x", vllm_args("m", "m", None)).max_lora_rank == 0


def test_refusals_name_both_sides(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_catalog())
    slots = ServingSlots.from_vllm_args(
        "hr-bot", vllm_args("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b-instruct", 16)
    )
    with session_scope(session_factory) as session:
        adapter, base = adapters.check_fits(session, slots, "resource:default/hr-adapter-v2")
        assert adapter["metadata"]["name"] == "hr-adapter-v2" and base is not None

        with pytest.raises(ConflictError) as rank:
            adapters.check_fits(session, slots, "resource:default/hr-adapter-v3")
        assert [d.path for d in rank.value.details] == ["spec.rank"]
        assert "resource:default/hr-adapter-v3 has rank 64" in rank.value.message
        assert "hr-bot was sized for LoRA rank at most 16" in rank.value.message
        assert "nothing was changed" in rank.value.message

        with pytest.raises(ConflictError) as base_model:
            adapters.check_fits(session, slots, "legal-adapter-v1")
        message = base_model.value.message
        assert (
            "trained on resource:default/llama-3-70b-v1 (meta-llama/Meta-Llama-3-70B-Instruct)"
            in message
        )
        assert "service hr-bot serves meta-llama/Meta-Llama-3-8B-Instruct" in message

        # A service that names its model version: compared by ref; without LoRA slots.
        pinned = ServingSlots.from_vllm_args(
            "legal-bot", vllm_args("meta-llama/Meta-Llama-3-8B-Instruct", "x", None),
            model_ref="resource:default/llama-3-8b-v1",
        )  # fmt: skip
        with pytest.raises(ConflictError) as both:
            adapters.check_fits(session, pinned, "resource:default/legal-adapter-v1")
        assert [d.path for d in both.value.details] == ["spec.baseModel", "spec.rank"]
        assert "legal-bot serves resource:default/llama-3-8b-v1" in both.value.message
        assert "sized without LoRA slots" in both.value.message


def _publish(settings, files: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    bare = local_repos.repo_path(settings, "hr", "hr-bot")
    bare.parent.mkdir(parents=True, exist_ok=True)
    work = bare.parent / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for name, text in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    subprocess.run([*git, "push", "-q", str(bare), "main"], check=True)
    return local_repos.contents_url(bare, "main")


def test_fit_over_http_reads_the_services_repository(
    settings,
    session_factory,
    admin_client,  # type: ignore[no-untyped-def]
) -> None:
    args = vllm_args("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b-instruct", 16)
    url = _publish(settings, {"serving/vllm-args.json": json.dumps(args)})
    service = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "hr-bot",
            "annotations": {"backstage.io/managed-by-location": f"url:{url}/catalog-info.yaml"},
        },
        "spec": {
            "type": "rag-service",
            "lifecycle": "production",
            "owner": "group:default/hr",
            "dependsOn": ["resource:default/llama-3-8b-v1", "resource:default/hr-adapter-v2"],
        },
    }
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([*_catalog(), service])
    path = "/api/rag/services/default/hr-bot/adapter-fit"
    ok = admin_client.get(path, params={"adapter": "resource:default/hr-adapter-v2"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["service"] == {
        "name": "hr-bot",
        "model": "meta-llama/Meta-Llama-3-8B-Instruct",
        "modelRef": "resource:default/llama-3-8b-v1",
        "maxLoraRank": 16,
    }
    refused = admin_client.get(path, params={"adapter": "resource:default/hr-adapter-v3"})
    assert refused.status_code == 409
    assert (
        "has rank 64, but service hr-bot was sized for LoRA rank at most 16"
        in (refused.json()["error"]["message"])
    )
    # What a LoRA picker offers for a base model: by version ref, family or checkpoint.
    for model in (
        "resource:default/llama-3-8b-v1",
        "llama-3-8b",
        "meta-llama/Meta-Llama-3-8B-Instruct",
    ):
        offered = admin_client.get(f"/api/rag/models/{model}/adapters").json()
        names = [e["metadata"]["name"] for e in offered["items"]]
        assert names == ["hr-adapter-v2", "hr-adapter-v3"], model
    offered = admin_client.get("/api/rag/models/llama-3-70b-v1/adapters").json()
    assert [e["metadata"]["name"] for e in offered["items"]] == ["legal-adapter-v1"]
    assert admin_client.get("/api/rag/models/nothing/adapters").json() == {"items": []}
