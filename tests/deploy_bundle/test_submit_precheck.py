"""Submit-time refusal through the scaffolder engine with the shipped rag-service template:
the form's impossible combination never becomes a task, and the message says what fits.
The owner must be a Group registered in the catalog (the owner step's catalog:fetch
precheck reads the real database, as catalog:register's collision check does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import InputError
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import ActionContext, ActionError, get_action
from portal_backend.scaffolder.engine import precheck
from portal_backend.scaffolder.templates import Template, load_template_file, with_defaults
from portal_backend.settings import Settings

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "scaffolder_templates" / "rag-service"
BASE = {"name": "hr-assistant", "owner": "group:default/people-team"}


def group(name: str) -> dict:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": name},
        "spec": {"type": "team", "children": []},
    }


def register_groups(session_factory, *names: str) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([group(n) for n in names])


@pytest.fixture
def template(session_factory) -> Template:  # type: ignore[no-untyped-def]
    """The shipped template, with BASE's owner group registered in the catalog."""
    load_actions()
    register_groups(session_factory, "people-team")
    entity = load_template_file(TEMPLATE_DIR / "template.yaml")
    return Template("template:default/rag-service", entity, TEMPLATE_DIR, trusted=True)


def owner_problem(template: Template, settings: Settings, owner: str) -> str:
    values = with_defaults(template, {**BASE, "owner": owner})
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    assert [d.path for d in info.value.details] == ["parameters.owner"], info.value.details
    return info.value.details[0].message


def test_owner_must_be_a_registered_group(
    template: Template, settings: Settings, session_factory
) -> None:  # type: ignore[no-untyped-def]
    register_groups(session_factory, "search-team")
    message = owner_problem(template, settings, "group:default/ghost-team")
    assert "group:default/ghost-team is not registered in the catalog" in message
    assert "register the group first (POST /api/catalog/locations" in message
    assert "pick one of: group:default/people-team, group:default/search-team" in message
    # A short ref means a Group (OwnerPicker's default kind); it must exist too.
    assert "group:default/ghost" in owner_problem(template, settings, "ghost")
    # A registered entity of another kind is not an owner Group.
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(
            [{"apiVersion": "backstage.io/v1alpha1", "kind": "User", "metadata": {"name": "al"},
              "spec": {"memberOf": ["people-team"]}}]
        )  # fmt: skip
    message = owner_problem(template, settings, "user:default/al")
    assert message.startswith("user:default/al is not a Group; register the group first")
    assert "pick one of: group:default/people-team" in message
    # Registered groups pass, with or without the kind.
    for owner in ("group:default/search-team", "people-team"):
        precheck(template, with_defaults(template, {**BASE, "owner": owner}), settings, "u:a")


def test_owner_refusal_when_no_group_is_registered(settings: Settings) -> None:
    load_actions()
    entity = load_template_file(TEMPLATE_DIR / "template.yaml")
    template = Template("template:default/rag-service", entity, TEMPLATE_DIR, trusted=True)
    message = owner_problem(template, settings, "group:default/people-team")
    assert message == (
        "group:default/people-team is not registered in the catalog and no Group is yet; "
        "register the group first (POST /api/catalog/locations with its catalog-info.yaml)"
    )


def test_unregistered_owner_is_a_400_over_http_and_nothing_is_created(
    admin_client, live_server, session_factory
) -> None:  # type: ignore[no-untyped-def]
    register_groups(session_factory, "search-team")
    values = {**BASE, "owner": "group:default/ghost-team"}
    response = admin_client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/rag-service", "values": values},
    )
    assert response.status_code == 400, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["path"] == "parameters.owner"
    assert "pick one of: group:default/search-team" in detail["message"]
    assert admin_client.get("/api/scaffolder/v2/tasks").json()["totalTasks"] == 0
    repos = live_server.settings.data_dir / "repos"
    assert not repos.exists() or not any(repos.rglob("hr-assistant*"))
    component = "/api/catalog/entities/by-name/component/default/hr-assistant"
    assert admin_client.get(component).status_code == 404


def test_owner_step_at_run_time(settings: Settings, session_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The step runs again in the worker: the group may have gone since the submit."""
    load_actions()
    fetch = get_action("catalog:fetch")
    assert fetch is not None
    logs: list[str] = []
    ctx = ActionContext(
        task_id="t", step_id="owner", workspace=tmp_path, settings=settings,
        session_factory=session_factory, user_ref="user:default/a", log=logs.append,
    )  # fmt: skip
    register_groups(session_factory, "people-team")
    owner = {"defaultKind": "group", "allowedKinds": ["Group"]}
    found = fetch.run(ctx, {**owner, "entityRef": "people-team"})
    assert found["entity"]["metadata"]["name"] == "people-team"
    assert logs == ["found group:default/people-team"]
    with pytest.raises(ActionError, match="group:default/gone is not registered"):
        fetch.run(ctx, {**owner, "entityRef": "group:default/gone"})
    assert fetch.run(ctx, {**owner, "entityRef": "gone", "optional": True}) == {"entity": None}


def test_defaults_pass_the_sizing_precheck(template: Template, settings: Settings) -> None:
    precheck(template, with_defaults(template, BASE), settings, "user:default/a")


def test_70b_bf16_on_l4_with_many_long_requests_is_refused(
    template: Template, settings: Settings
) -> None:
    values = with_defaults(
        template,
        {
            **BASE,
            "model": "llama-3-70b-instruct",
            "quantization": "bf16",
            "gpu_class": "L4",
            "concurrency": 8,
        },
    )
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    (detail,) = [d for d in info.value.details if d.path == "parameters.gpu_class"]
    # 141.10 GB of weights + 8 x 2.68 GB of KV cache = 162.57 GB > 8 x 20.10 GB of L4.
    assert "needed 162.57 GB" in detail.message
    assert "does not fit on 8 x L4" in detail.message
    assert "needs >= 2 x H200 or 4 x A100-80GB or 4 x H100 or 8 x A100-40GB" in detail.message
    assert "on L4 try fp8 with 8 GPUs or awq with 4 GPUs" in detail.message


def test_llama3_context_beyond_8192_is_refused_on_its_field(
    template: Template, settings: Settings
) -> None:
    values = with_defaults(template, {**BASE, "max_model_len": 32768})
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    assert [d.path for d in info.value.details] == ["parameters.max_model_len"]


def test_70b_bf16_on_one_l4_is_refused_with_what_would_fit(
    template: Template, settings: Settings
) -> None:
    """The issue's example: the form caps GPUs per replica at one, and 70B bf16 cannot fit."""
    values = with_defaults(
        template,
        {
            **BASE,
            "model": "llama-3-70b-instruct",
            "quantization": "bf16",
            "gpu_class": "L4",
            "max_gpus": 1,
        },
    )
    with pytest.raises(InputError) as info:
        precheck(template, values, settings, "user:default/a")
    messages = {d.path: d.message for d in info.value.details}
    assert "does not fit on 1 x L4" in messages["parameters.gpu_class"], messages
    assert "needs >=" in messages["parameters.gpu_class"]
