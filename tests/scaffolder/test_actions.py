"""Actions and expressions called directly (no queue): idempotence of publish:git and
catalog:register, sandboxing, workspace confinement, cookiecutter value handling."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from catalog.errors import ConflictError
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import ActionContext, ActionError, get_action
from portal_backend.scaffolder.actions.fetch import build_context
from portal_backend.scaffolder.expressions import (
    ExpressionError,
    parse_entity_ref,
    parse_repo_url,
    references_steps,
    render_value,
)
from portal_backend.settings import Settings
from tests.scaffolder.conftest import FIXTURE_TEMPLATES
from tests.scaffolder.helpers import commit_count, git

load_actions()
SKELETON = FIXTURE_TEMPLATES / "demo-service" / "skeleton"


def _ctx(settings: Settings, session_factory, task_id: str, workspace: Path) -> ActionContext:  # type: ignore[no-untyped-def]
    workspace.mkdir(parents=True, exist_ok=True)
    return ActionContext(
        task_id=task_id,
        step_id="s",
        workspace=workspace,
        settings=settings,
        session_factory=session_factory,
        user_ref="user:default/alice",
        log=lambda m: None,
        template_dir=FIXTURE_TEMPLATES / "demo-service",
        template_trusted=True,
    )


def _render(ctx: ActionContext, name: str) -> None:
    get_action("fetch:cookiecutter").run(  # type: ignore[union-attr]
        ctx, {"url": "./skeleton", "values": {"name": name, "owner": "group:default/a"}}
    )


def test_publish_and_register_twice_make_one_repo_commit_and_entity(
    settings: Settings, session_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(settings, session_factory, "task-1", settings.data_dir / "workspaces" / "task-1")
    _render(ctx, "twice")
    publish = get_action("publish:git")
    register = get_action("catalog:register")
    first = publish.run(ctx, {"repoUrl": "local?owner=o&repo=twice"})  # type: ignore[union-attr]
    second = publish.run(ctx, {"repoUrl": "local?owner=o&repo=twice"})  # type: ignore[union-attr]
    assert first == second
    repo = settings.data_dir / "repos" / "o" / "twice.git"
    assert commit_count(repo) == 1
    assert "Scaffolder-Task: task-1" in git(repo, "log", "-1", "--format=%B")

    out1 = register.run(ctx, {"repoContentsUrl": first["repoContentsUrl"]})  # type: ignore[union-attr]
    out2 = register.run(ctx, {"repoContentsUrl": first["repoContentsUrl"]})  # type: ignore[union-attr]
    assert out1["entityRef"] == out2["entityRef"] == "component:default/twice"
    from catalog.service import CatalogService

    with session_factory() as session:
        assert CatalogService(session).query_refs({"kind": "component"}) == [
            "component:default/twice"
        ]

    # Another task may not take over the repository, at submit (409) or at run time.
    with pytest.raises(ConflictError):
        publish.precheck({"repoUrl": "local?owner=o&repo=twice"}, settings)  # type: ignore[union-attr]
    other = _ctx(settings, session_factory, "task-2", settings.data_dir / "workspaces" / "task-2")
    _render(other, "twice")
    with pytest.raises(ConflictError):
        publish.run(other, {"repoUrl": "local?owner=o&repo=twice"})  # type: ignore[union-attr]
    assert commit_count(repo) == 1


def test_publish_refuses_path_tricks_in_repo_url(settings: Settings, session_factory, tmp_path):  # type: ignore[no-untyped-def]
    publish = get_action("publish:git")
    errors = publish.precheck({"repoUrl": "local?owner=..&repo=x"}, settings)  # type: ignore[union-attr]
    assert errors and errors[0].path == "input.repoUrl"
    errors = publish.precheck({"repoUrl": "nowhere.example?owner=o&repo=x"}, settings)  # type: ignore[union-attr]
    assert "not configured" in errors[0].message


def test_fs_actions_stay_inside_the_workspace(settings: Settings, session_factory, tmp_path: Path):  # type: ignore[no-untyped-def]
    ctx = _ctx(settings, session_factory, "t", tmp_path / "ws")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    with pytest.raises(ActionError, match="outside the workspace"):
        get_action("fs:delete").run(ctx, {"files": ["../precious.txt"]})  # type: ignore[union-attr]
    with pytest.raises(ActionError, match="outside the workspace"):
        get_action("fs:rename").run(  # type: ignore[union-attr]
            ctx, {"files": [{"from": "../precious.txt", "to": "x"}]}
        )
    assert outside.read_text() == "keep"


def test_fetch_refuses_values_that_escape_the_output(settings: Settings, session_factory, tmp_path):  # type: ignore[no-untyped-def]
    ctx = _ctx(settings, session_factory, "t", tmp_path / "ws")
    with pytest.raises(ActionError, match="leave the output"):
        get_action("fetch:cookiecutter").run(  # type: ignore[union-attr]
            ctx, {"url": "./skeleton", "values": {"name": "../../escaped"}}
        )
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(ActionError, match="outside the template folders"):
        get_action("fetch:cookiecutter").run(ctx, {"url": "/etc"})  # type: ignore[union-attr]


def test_cookiecutter_values_are_data_defaults_are_rendered() -> None:
    context = build_context(SKELETON, {"name": "my-svc", "description": "{{ 7 * 7 }}"}, {})
    values = context["cookiecutter"]
    assert values["description"] == "{{ 7 * 7 }}"  # a value is never rendered
    assert values["slug"] == "my_svc"  # a default that refers to other values is


def test_expressions_are_sandboxed_and_typed() -> None:
    ctx = {
        "parameters": {"n": [1, 2], "s": "${{ parameters.n }}"},
        "steps": {"a": {"output": {"x": 3}}},
        "user": {"ref": "user:default/a"},
        "secrets": {},
    }
    assert render_value("${{ parameters.n }}", ctx) == [1, 2]
    assert render_value("${{ steps['a'].output.x }}", ctx) == 3
    assert render_value("v${{ steps.a.output.x }}", ctx) == "v3"
    assert render_value("${{ parameters.s }}", ctx) == "${{ parameters.n }}"  # not re-evaluated
    assert render_value("${{ ''.__class__.__mro__ }}", ctx) is None  # sandbox hides internals
    with pytest.raises(ExpressionError):
        render_value("${{ ''.__class__.__mro__[1].__subclasses__() }}", ctx)
    assert render_value("${{ 'github.com?owner=o&repo=r' | projectSlug }}", ctx) == "o/r"
    assert render_value("${{ 'local?owner=o&repo=r' | parseRepoUrl | pick('repo') }}", ctx) == "r"
    assert parse_repo_url("local?owner=o&repo=r") == {"host": "local", "owner": "o", "repo": "r"}
    assert parse_entity_ref("group:team-a") == {
        "kind": "group",
        "namespace": "default",
        "name": "team-a",
    }
    assert references_steps({"a": ["${{ steps['x'].output.y }}"]})
    assert not references_steps({"a": "${{ parameters.steps }}"})


def _hooked_template(root: Path) -> Path:
    """A template folder whose skeleton has a post-generation hook leaving a marker."""
    skeleton = root / "hooked" / "skeleton"
    (skeleton / "{{cookiecutter.name}}").mkdir(parents=True)
    (skeleton / "hooks").mkdir()
    (skeleton / "cookiecutter.json").write_text('{"name": "x"}')
    (skeleton / "{{cookiecutter.name}}" / "README.md").write_text("{{ cookiecutter.name }}\n")
    (skeleton / "hooks" / "post_gen_project.py").write_text(
        "from pathlib import Path\nPath('HOOK_RAN').write_text('yes')\n"
    )
    return root / "hooked"


def test_cookiecutter_hooks_run_only_for_trusted_templates(
    settings: Settings, session_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    template_dir = _hooked_template(tmp_path / "elsewhere")
    fetch = get_action("fetch:cookiecutter")
    logs: list[str] = []
    for trusted in (False, True):
        workspace = tmp_path / f"ws-{trusted}"
        workspace.mkdir()
        ctx = ActionContext(
            task_id="t",
            step_id="s",
            workspace=workspace,
            settings=settings,
            session_factory=session_factory,
            user_ref="user:default/a",
            log=logs.append,
            template_dir=template_dir,
            template_trusted=trusted,
        )
        fetch.run(ctx, {"url": "./skeleton", "values": {"name": "svc"}})  # type: ignore[union-attr]
        assert (workspace / "README.md").read_text() == "svc\n"
        assert (workspace / "HOOK_RAN").exists() is trusted
    assert any("hooks skipped" in line for line in logs)


def test_register_reads_http_locations_through_the_catalog(
    settings: Settings, session_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import http.server
    import threading

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "catalog-info.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: from-http}\n"
        "spec: {type: service, lifecycle: production, owner: group:default/a}\n"
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        local = settings.model_copy(update={"allow_private_urls": True})
        ctx = _ctx(local, session_factory, "task-h", tmp_path / "ws")
        url = f"http://127.0.0.1:{httpd.server_address[1]}/catalog-info.yaml"
        register = get_action("catalog:register")
        first = register.run(ctx, {"catalogInfoUrl": url})  # type: ignore[union-attr]
        second = register.run(ctx, {"catalogInfoUrl": url})  # type: ignore[union-attr]
        assert first["entityRef"] == second["entityRef"] == "component:default/from-http"
    finally:
        httpd.shutdown()


def test_sweep_removes_workspaces_past_retention(settings: Settings, session_factory) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from portal_backend.db import session_scope
    from portal_backend.scaffolder import engine, store

    with session_scope(session_factory) as session:
        spec = {"steps": [{"id": "a", "action": "debug:log"}]}
        old = store.create_task(
            session,
            template_ref="template:default/x",
            spec=spec,
            values={},
            secrets=None,
            created_by="user:default/a",
        )
        fresh = store.create_task(
            session,
            template_ref="template:default/x",
            spec=spec,
            values={},
            secrets=None,
            created_by="user:default/a",
        )
        old.status, old.completed_at = "failed", datetime.now(UTC) - timedelta(days=8)
        fresh.status, fresh.completed_at = "failed", datetime.now(UTC)
        ids = old.id, fresh.id
    for task_id in (*ids, "gone-task"):
        (settings.data_dir / "workspaces" / task_id).mkdir(parents=True)
    sent: list[str] = []
    engine.recovery_sweep(settings, session_factory, sent.append)
    left = {p.name for p in (settings.data_dir / "workspaces").iterdir()}
    assert sent == []
    assert ids[0] not in left  # ended 8 days ago
    assert {ids[1], "gone-task"} <= left  # ended just now; unknown but new
