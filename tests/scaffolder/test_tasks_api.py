"""The scaffolder over real HTTP, with real worker processes on Redis, real git and
cookiecutter: happy path, bad input, collisions, injection, SSE, dry-run, cancel, retry."""

from __future__ import annotations

import base64
import json

import httpx

from portal_backend.settings import Settings
from tests.scaffolder.conftest import wait_for, wait_status
from tests.scaffolder.helpers import API, commit_count, git, repos, submit, values


def _settings(client: httpx.Client) -> Settings:
    from tests.scaffolder.conftest import settings_env  # noqa: F401

    return client._scaffolder_settings  # type: ignore[attr-defined]


def test_happy_path_renders_publishes_and_registers(portal: httpx.Client, scaffolder_settings):
    created = submit(portal, "orders-api", description="Order history", replicas=2)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    task = wait_status(portal, task_id, ("completed", "failed"))
    assert task["status"] == "completed", task
    assert [s["status"] for s in task["steps"]] == [
        "completed",
        "skipped",
        "completed",
        "completed",
        "completed",
        "completed",
        "completed",
        "skipped",
    ]
    assert task["createdBy"] == "user:default/bootstrap"
    links = task["output"]["links"]
    assert links[1]["entityRef"] == "component:default/orders-api"

    [repo] = repos(scaffolder_settings)
    assert repo.name == "orders-api.git"
    assert links[0]["url"] == f"file://{repo}"
    assert commit_count(repo) == 1
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == (
        "bootstrap <bootstrap@users.rag-portal.local>"
    )
    assert sorted(git(repo, "ls-tree", "-r", "--name-only", "main").split()) == [
        ".rag-portal/answers.yml",
        "README.md",
        "catalog-info.yaml",
        "docs/NOTES.md",
        "docs/index.md",
    ]
    assert "Python package: `orders_api`" in git(repo, "show", "main:README.md")

    entity = portal.get("/api/catalog/entities/by-name/component/default/orders-api")
    assert entity.status_code == 200, entity.text
    assert entity.json()["spec"]["owner"] == "group:default/team-a"
    assert entity.json()["metadata"]["annotations"]["rag-portal.io/replicas"] == "2"

    events = portal.get(f"{API}/tasks/{task_id}/events").json()
    assert events[-1]["type"] == "completion"
    assert any("published demo/orders-api" in e["body"]["message"] for e in events)
    later = portal.get(f"{API}/tasks/{task_id}/events", params={"after": events[-3]["id"]}).json()
    assert [e["id"] for e in later] == [e["id"] for e in events[-2:]]
    # The workspace is gone once the task completed.
    assert not (scaffolder_settings.data_dir / "workspaces" / task_id).exists()


def test_schema_errors_list_every_field(portal: httpx.Client) -> None:
    response = portal.post(
        f"{API}/tasks",
        json={
            "templateRef": "template:default/demo-service",
            "values": {"name": "Bad_Name", "replicas": 9},
        },
    )
    assert response.status_code == 400
    body = response.json()
    paths = sorted(d["path"] for d in body["error"]["details"])
    assert paths == ["values.name", "values.owner", "values.replicas"]
    assert portal.get(f"{API}/tasks").json()["totalTasks"] == 0


def test_unknown_template_is_404(portal: httpx.Client) -> None:
    response = portal.post(
        f"{API}/tasks", json={"templateRef": "template:default/nope", "values": {}}
    )
    assert response.status_code == 404
    assert "template:default/nope" in response.json()["error"]["message"]
    schema = portal.get(f"{API}/templates/default/template/nope/parameter-schema")
    assert schema.status_code == 404


def test_parameter_schema_and_actions(portal: httpx.Client) -> None:
    # Shipped templates are Template entities in the catalog, managed by their file.
    entity = portal.get("/api/catalog/entities/by-name/template/default/demo-service")
    assert entity.status_code == 200, entity.text
    location = entity.json()["metadata"]["annotations"]["backstage.io/managed-by-location"]
    assert location.endswith("/tests/fixtures/templates/demo-service/template.yaml")
    schema = portal.get(f"{API}/templates/default/template/demo-service/parameter-schema").json()
    assert [s["title"] for s in schema["steps"]] == ["Basics", "Options"]
    assert schema["steps"][0]["schema"]["required"] == ["name", "owner"]
    actions = {a["id"]: a for a in portal.get(f"{API}/actions").json()}
    for action_id in (
        "fetch:cookiecutter",
        "publish:git",
        "catalog:register",
        "catalog:write",
        "debug:log",
        "fs:delete",
        "fs:rename",
    ):
        assert action_id in actions
    assert actions["publish:git"]["schema"]["input"]["required"] == ["repoUrl"]
    assert "commitHash" in actions["publish:git"]["schema"]["output"]["properties"]


def test_collisions_are_409_before_anything_is_created(
    portal: httpx.Client, scaffolder_settings: Settings
) -> None:
    first = submit(portal, "taken-repo").json()["id"]
    assert wait_status(portal, first, ("completed", "failed"))["status"] == "completed"

    again = submit(portal, "taken-repo")
    assert again.status_code == 409, again.text
    assert "taken-repo already exists" in again.json()["error"]["message"]

    # An entity that exists in the catalog (registered some other way) also collides.
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "taken-entity"},
        "spec": {"type": "service", "lifecycle": "production", "owner": "group:default/x"},
    }
    from catalog.service import CatalogService
    from portal_backend.db import make_engine, make_session_factory, session_scope

    factory = make_session_factory(make_engine(scaffolder_settings.database_url))
    with session_scope(factory) as session:
        CatalogService(session).upsert_entities([entity])
    clash = submit(portal, "taken-entity")
    assert clash.status_code == 409, clash.text
    assert "component:default/taken-entity" in clash.json()["error"]["message"]

    assert portal.get(f"{API}/tasks").json()["totalTasks"] == 1
    assert [r.name for r in repos(scaffolder_settings)] == ["taken-repo.git"]


def test_injection_in_values_is_inert(portal: httpx.Client, scaffolder_settings: Settings) -> None:
    evil = "{{ ''.__class__.__mro__ }} ${{ parameters.owner }} {% raw %}{{ cookiecutter }}"
    task_id = submit(portal, "inert-values", description=evil).json()["id"]
    task = wait_status(portal, task_id, ("completed", "failed"))
    assert task["status"] == "completed", task
    [repo] = repos(scaffolder_settings)
    readme = git(repo, "show", "main:README.md")
    assert evil in readme  # verbatim: neither the engine nor cookiecutter rendered it
    assert "class 'object'" not in readme
    entity = portal.get("/api/catalog/entities/by-name/component/default/inert-values").json()
    assert entity["metadata"]["description"] == evil


def test_event_stream_delivers_the_log_until_completion(portal: httpx.Client) -> None:
    task_id = submit(portal, "streamed", waitSeconds=1).json()["id"]
    received: list[tuple[str, dict]] = []
    with portal.stream("GET", f"{API}/tasks/{task_id}/eventstream", timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_type = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event_type = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                received.append((event_type, json.loads(line.split(":", 1)[1])))
    types = [t for t, _ in received]
    assert types[-1] == "completion"
    assert received[-1][1]["body"]["status"] == "completed"
    assert all(d["taskId"] == task_id for _, d in received)
    assert any(
        d["body"].get("stepId") == "wait" and d["body"].get("status") == "completed"
        for _, d in received
    )
    ids = [d["id"] for _, d in received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # A reconnecting client (EventSource sends Last-Event-ID) gets only what it missed.
    resumed = portal.get(
        f"{API}/tasks/{task_id}/eventstream", headers={"Last-Event-ID": str(ids[-3])}
    )
    data = [json.loads(line[5:]) for line in resumed.text.splitlines() if line.startswith("data:")]
    assert [d["id"] for d in data] == ids[-2:]


def test_dry_run_creates_nothing(portal: httpx.Client, scaffolder_settings: Settings) -> None:
    response = portal.post(
        f"{API}/dry-run",
        json={"templateRef": "template:default/demo-service", "values": values("dry-one")},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "completed", result["log"]
    files = {
        f["path"]: base64.b64decode(f["base64Content"]).decode()
        for f in result["directoryContents"]
    }
    assert sorted(files) == ["README.md", "catalog-info.yaml", "docs/NOTES.md", "docs/index.md"]
    assert "name: dry-one" in files["catalog-info.yaml"]
    assert any("would publish demo/dry-one" in e["body"]["message"] for e in result["log"])
    assert repos(scaffolder_settings) == []
    assert portal.get(f"{API}/tasks").json()["totalTasks"] == 0
    missing = portal.get("/api/catalog/entities/by-name/component/default/dry-one")
    assert missing.status_code == 404


def test_dry_run_of_inline_template_redacts_secrets(portal: httpx.Client) -> None:
    template = {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "inline"},
        "spec": {
            "parameters": [],
            "steps": [
                {
                    "id": "say",
                    "action": "debug:log",
                    "input": {"message": "token=${{ secrets.apiKey }}"},
                },
                {
                    "id": "write",
                    "action": "catalog:write",
                    "input": {"entity": {"kind": "Component", "metadata": {"name": "x"}}},
                },
            ],
        },
    }
    result = portal.post(
        f"{API}/dry-run",
        json={
            "template": template,
            "values": {},
            "secrets": {"apiKey": "hunter2-secret"},
        },
    ).json()
    messages = [e["body"]["message"] for e in result["log"]]
    assert "token=***" in messages
    assert "hunter2-secret" not in json.dumps(result)
    assert [f["path"] for f in result["directoryContents"]] == ["catalog-info.yaml"]


def test_cancel_during_a_step(portal: httpx.Client, scaffolder_settings: Settings) -> None:
    task_id = submit(portal, "cancel-me", waitSeconds=30).json()["id"]

    def waiting() -> bool:
        steps = portal.get(f"{API}/tasks/{task_id}").json()["steps"]
        return any(s["id"] == "wait" and s["status"] == "processing" for s in steps)

    wait_for(waiting, 30)
    response = portal.post(f"{API}/tasks/{task_id}/cancel")
    assert response.status_code == 200
    task = wait_status(portal, task_id, ("cancelled", "completed", "failed"), timeout=15)
    assert task["status"] == "cancelled"
    statuses = {s["id"]: s["status"] for s in task["steps"]}
    assert statuses["wait"] == "cancelled" and statuses["publish"] == "cancelled"
    assert repos(scaffolder_settings) == []
    assert portal.post(f"{API}/tasks/{task_id}/cancel").status_code == 409


def test_retry_resumes_at_the_failed_step(
    portal: httpx.Client, scaffolder_settings: Settings
) -> None:
    task_id = submit(portal, "retry-me", renameFrom="MISSING.md").json()["id"]
    failed = wait_status(portal, task_id, ("failed", "completed"))
    assert failed["status"] == "failed"
    assert "MISSING.md does not exist" in failed["error"]["message"]
    events = portal.get(f"{API}/tasks/{task_id}/events").json()
    assert any("Rename notes failed" in e["body"]["message"] for e in events)
    assert repos(scaffolder_settings) == []

    # The user fixes the cause (the workspace is kept for a failed task), then retries.
    workspace = scaffolder_settings.data_dir / "workspaces" / task_id
    (workspace / "MISSING.md").write_text("found\n")
    retried = portal.post(f"{API}/tasks/{task_id}/retry")
    assert retried.status_code == 201 and retried.json()["resumeAt"] == "rename"
    task = wait_status(portal, task_id, ("completed", "failed"))
    assert task["status"] == "completed", task
    attempts = {s["id"]: s["attempts"] for s in task["steps"]}
    assert attempts["fetch"] == 1 and attempts["rename"] == 2
    [repo] = repos(scaffolder_settings)
    assert git(repo, "show", "main:docs/NOTES.md") == "found\n"
    assert portal.post(f"{API}/tasks/{task_id}/retry").status_code == 409


def test_task_list_filters_and_pages(portal: httpx.Client, live_token_factory) -> None:
    other = live_token_factory("user:default/carol")
    ids = [submit(portal, f"list-{i}").json()["id"] for i in range(3)]
    carol_id = submit(other, "list-carol").json()["id"]
    for task_id in [*ids, carol_id]:
        wait_status(portal, task_id, ("completed", "failed"))
    everything = portal.get(f"{API}/tasks").json()
    assert everything["totalTasks"] == 4
    mine = portal.get(f"{API}/tasks", params={"createdBy": "user:default/carol"}).json()
    assert [t["id"] for t in mine["tasks"]] == [carol_id]
    assert [
        t["id"] for t in other.get(f"{API}/tasks", params={"createdBy": "me"}).json()["tasks"]
    ] == [carol_id]
    page = portal.get(f"{API}/tasks", params={"limit": 2, "offset": 2}).json()
    assert len(page["tasks"]) == 2 and page["totalTasks"] == 4
    done = portal.get(f"{API}/tasks", params={"status": "completed"}).json()
    assert done["totalTasks"] == 4
    assert portal.get(f"{API}/tasks", params={"status": "bogus"}).status_code == 422
    # Only the creator (or an admin) may cancel or retry.
    assert other.post(f"{API}/tasks/{ids[0]}/retry").status_code == 403


def test_secrets_are_sealed_masked_and_dropped(
    portal: httpx.Client, scaffolder_settings: Settings
) -> None:
    secret = "s3cr3t-token-value"
    created = portal.post(
        f"{API}/tasks",
        json={
            "templateRef": "template:default/demo-service",
            "values": values("with-secret", waitSeconds=2),
            "secrets": {"apiToken": secret},
        },
    )
    task_id = created.json()["id"]
    from sqlalchemy import create_engine, text

    engine = create_engine(scaffolder_settings.database_url)

    def stored() -> str:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT secrets FROM scaffolder_tasks WHERE id = :id"), {"id": task_id}
            ).one()
        return json.dumps(row[0]) if not isinstance(row[0], str) else row[0]

    at_rest = stored()
    assert "sealed" in at_rest and secret not in at_rest  # encrypted while the task lives
    task = wait_status(portal, task_id, ("completed", "failed"))
    assert task["status"] == "completed", task
    events = portal.get(f"{API}/tasks/{task_id}/events").json()
    assert any(e["body"]["message"] == "calling the API with token ***" for e in events)
    assert secret not in json.dumps(events) and secret not in json.dumps(task)
    assert stored() == "null"  # dropped once the task completed
    [repo] = repos(scaffolder_settings)
    assert secret not in git(repo, "log", "-p", "--all")
    engine.dispose()


def test_template_added_through_a_catalog_location_runs_without_hooks(
    portal: httpx.Client, scaffolder_settings: Settings
) -> None:
    """Any template can be added as a location; its skeleton resolves beside the file,
    and since it is not in a trusted folder its cookiecutter hooks do not run."""
    import shutil

    import yaml

    from tests.scaffolder.conftest import FIXTURE_TEMPLATES

    folder = scaffolder_settings.data_dir / "imported" / "custom-demo"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(FIXTURE_TEMPLATES / "demo-service", folder)
    hooks = folder / "skeleton" / "hooks"
    hooks.mkdir()
    (hooks / "post_gen_project.py").write_text("open('HOOK_RAN', 'w').write('yes')\n")
    template = yaml.safe_load((folder / "template.yaml").read_text())
    template["metadata"]["name"] = "custom-demo"
    (folder / "template.yaml").write_text(yaml.safe_dump(template))
    added = portal.post(
        "/api/catalog/locations", json={"type": "file", "target": str(folder / "template.yaml")}
    )
    assert added.status_code == 201, added.text

    created = portal.post(
        f"{API}/tasks",
        json={"templateRef": "template:default/custom-demo", "values": values("from-custom")},
    )
    assert created.status_code == 201, created.text
    task = wait_status(portal, created.json()["id"], ("completed", "failed"))
    assert task["status"] == "completed", task
    events = portal.get(f"{API}/tasks/{task['id']}/events").json()
    assert any("hooks skipped" in e["body"]["message"] for e in events)
    [repo] = repos(scaffolder_settings)
    assert "HOOK_RAN" not in git(repo, "ls-tree", "-r", "--name-only", "main")
