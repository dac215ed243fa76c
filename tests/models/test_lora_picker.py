"""The create form's LoRA field picks from the catalog (issue 20): the form offers the
lora-adapter versions trained on the chosen model, a picked version that does not fit
the service is refused at submit naming both sides, and a new service's Component
dependsOn the model and adapter versions it serves.

API level: the form's schema as forms.py hands it to the browser, the adapters API the
form's script asks with the form's model key, POST /api/scaffolder/v2/tasks, and a real
create task of the rag-service template (published to a local repository; no cluster
and the local runtime off, so the deploy records a plan)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.git_hosts import local_repos
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.scaffolder import engine, store
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.scaffolder.templates import load_template_file
from portal_backend.web.forms import to_editor_schema
from tests.catalog.factories import group
from tests.models.adapters import adapter_entity, model_entity

MODULES = ["q_proj", "v_proj"]
BASE_8B = "resource:default/llama-3-8b-v1"
BASE_70B = "resource:default/llama-3-70b-v1"
TEMPLATE = "template:default/rag-service"
TEMPLATE_FILE = (
    Path(__file__).resolve().parents[2] / "scaffolder_templates/rag-service/template.yaml"
)


def _catalog() -> list[dict[str, Any]]:
    def adapter(family: str, version: str, rank: int, base: str) -> dict[str, Any]:
        return adapter_entity(
            f"{family}-v{version}", version, f"/srv/adapters/{family}/{version}", rank=rank,
            alpha=2 * rank, modules=MODULES, base=base,
            previous=f"resource:default/{family}-v{int(version) - 1}" if version != "1" else None,
        )  # fmt: skip

    return [
        group("team-a"),
        model_entity("llama-3-8b-v1", "1", "meta-llama/Meta-Llama-3-8B-Instruct"),
        model_entity("llama-3-70b-v1", "1", "meta-llama/Meta-Llama-3-70B-Instruct"),
        adapter("hr-adapter", "1", 8, BASE_8B),
        adapter("hr-adapter", "2", 16, BASE_8B),
        adapter("hr-adapter", "3", 64, BASE_8B),
        adapter("faq-adapter", "1", 8, BASE_8B),
        adapter("legal-adapter", "1", 16, BASE_70B),
    ]


def test_the_form_declares_the_picker_and_the_api_answers_for_the_forms_model(
    settings, session_factory, admin_client  # type: ignore[no-untyped-def]
) -> None:  # fmt: skip
    # What the browser gets (forms.py): the LoRA list carries the picker's options.
    template = load_template_file(TEMPLATE_FILE)
    page = next(p for p in template["spec"]["parameters"] if "lora_adapters" in p["properties"])
    field = to_editor_schema(page)["properties"]["lora_adapters"]
    assert field["options"]["lora_picker"] == {
        "modelField": "model",
        "customModelField": "custom_model_id",
    }
    assert "version" in field["items"]["properties"]

    # What the form's script asks when a model is chosen: its key, or a custom model id.
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_catalog())

    def names(model: str) -> list[str]:
        response = admin_client.get(f"/api/rag/models/{model}/adapters")
        assert response.status_code == 200, response.text
        return [e["metadata"]["name"] for e in response.json()["items"]]

    assert names("llama-3-8b-instruct") == [
        "faq-adapter-v1",
        "hr-adapter-v1",
        "hr-adapter-v2",
        "hr-adapter-v3",
    ]
    assert names("llama-3-70b-instruct") == ["legal-adapter-v1"]
    assert names("meta-llama/Meta-Llama-3-70B-Instruct") == ["legal-adapter-v1"]
    assert names("mistralai/Mistral-7B-Instruct-v0.3") == []


def _values(name: str, loras: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "owner": "group:default/team-a",
        "cpu_fallback_enabled": False,
        "lora_adapters": loras,
    }


def test_a_picked_version_that_does_not_fit_is_refused_at_submit_naming_both(
    settings, session_factory, admin_client  # type: ignore[no-untyped-def]
) -> None:  # fmt: skip
    register_shipped_templates(settings, session_factory)
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_catalog())

    def refused(loras: list[dict[str, Any]]) -> dict[str, str]:
        response = admin_client.post(
            "/api/scaffolder/v2/tasks",
            json={"templateRef": TEMPLATE, "values": _values("picked-bot", loras)},
        )
        assert response.status_code == 400, response.text
        return {d["path"]: d["message"] for d in response.json()["error"]["details"]}

    other_base = refused(
        [
            {
                "name": "legal-adapter",
                "source": "/srv/adapters/legal-adapter/1",
                "rank": 16,
                "version": "resource:default/legal-adapter-v1",
            }
        ]
    )
    assert other_base == {
        "parameters.lora_adapters.0.version": (
            "adapter resource:default/legal-adapter-v1 is trained on "
            f"{BASE_70B} (meta-llama/Meta-Llama-3-70B-Instruct), but service picked-bot serves "
            f"{BASE_8B} (meta-llama/Meta-Llama-3-8B-Instruct)"
        )
    }
    too_big = refused(
        [
            {
                "name": "hr-adapter",
                "source": "/srv/adapters/hr-adapter/3",
                "rank": 16,
                "version": "resource:default/hr-adapter-v3",
            }
        ]
    )
    assert too_big == {
        "parameters.lora_adapters.0.rank": (
            "adapter resource:default/hr-adapter-v3 has rank 64, but service picked-bot was sized "
            "for LoRA rank at most 16 (--max-lora-rank)"
        )
    }
    edited = refused(
        [
            {
                "name": "hr-adapter",
                "source": "/srv/adapters/hr-adapter/9",
                "rank": 16,
                "version": "resource:default/hr-adapter-v2",
            }
        ]
    )
    assert "stored at /srv/adapters/hr-adapter/2" in edited["parameters.lora_adapters.0.source"]
    unknown = refused(
        [{"name": "x", "source": "/srv/x", "rank": 16, "version": "resource:default/nope-v1"}]
    )
    assert unknown == {
        "parameters.lora_adapters.0.version": (
            "resource:default/nope-v1 is not a lora-adapter version"
        )
    }
    assert admin_client.get("/api/scaffolder/v2/tasks").json()["totalTasks"] == 0


def _run(settings, factory, task_id: str, queue: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    while queue:
        engine.run_next_step(settings, factory, queue.pop(0), "worker-1", queue.append)
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        assert task is not None
        log = [e.body.get("message", "") for e in store.list_events(session, task_id, None)]
        return {"status": task.status, "log": log}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_new_service_depends_on_the_versions_it_serves(
    settings, session_factory, admin_client  # type: ignore[no-untyped-def]
) -> None:  # fmt: skip
    # No cluster and no local runtime: the deploy records a plan (nothing is started).
    settings = settings.model_copy(
        update={"image_registry": "registry.example.test/rag", "runtime_enabled": False}
    )
    register_shipped_templates(settings, session_factory)
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_catalog())
        SecretStore(session, settings).set(GLOBAL, "hf-token", "hf_never_used_here")
    loras = [
        # Picked from the catalog (what the form's picker fills in).
        {
            "name": "hr-adapter",
            "source": "/srv/adapters/hr-adapter/2",
            "rank": 16,
            "version": "resource:default/hr-adapter-v2",
        },
        # Typed by hand: the catalog's version with this source is found all the same.
        {"name": "faq", "source": "/srv/adapters/faq-adapter/1", "rank": 8},
        # Not in the catalog: served, not named.
        {"name": "scratch", "source": "/srv/adapters/scratch", "rank": 8},
    ]
    queue: list[str] = []
    task_id = engine.submit(
        settings,
        session_factory,
        template_ref=TEMPLATE,
        values=_values("picker-bot", loras),
        secrets=None,
        user_ref="user:default/alice",
        dispatch=queue.append,
    )
    result = _run(settings, session_factory, task_id, queue)
    assert result["status"] == "completed", result
    assert f"serves {BASE_8B} (meta-llama/Meta-Llama-3-8B-Instruct)" in result["log"]
    assert "serves resource:default/hr-adapter-v2 as hr-adapter" in result["log"]

    expected = [BASE_8B, "resource:default/hr-adapter-v2", "resource:default/faq-adapter-v1"]
    bare = local_repos.repo_path(settings, "team-a", "picker-bot")
    info = subprocess.run(
        ["git", "--git-dir", str(bare), "show", "main:catalog-info.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    component = next(yaml.safe_load_all(info))
    assert component["spec"]["dependsOn"][3:] == expected
    # The catalog answers "which services run hr-adapter v2" and "who is on this model".
    for ref in expected:
        users = admin_client.get(
            "/api/catalog/entities/by-query",
            params={"filter": f"kind=component,relations.dependsOn={ref}"},
        ).json()
        assert [e["metadata"]["name"] for e in users["items"]] == ["picker-bot"], ref
