"""Template versions and upgrades of generated repositories, end to end: a live portal,
real worker processes, real git and cookiecutter, on SQLite and PostgreSQL.

The test template (tests/fixtures/template_versions/versioned-service) has three
versions: 1.1.0 adds ci/pipeline.yaml and changes app/config.yaml's timeout; 2.0.0
renames docs/guide.md to docs/handbook.md, asks a new required question (tier) and no
longer asks replicas.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx
import pytest
import yaml

from portal_backend.db import make_engine, make_session_factory, upgrade_database
from portal_backend.scaffolder import upgrades
from portal_backend.settings import Settings
from tests.conftest import (
    REDIS_URL,
    fresh_postgres_schema,
    make_settings,
    start_live_server,
    truncate_all,
)
from tests.scaffolder.conftest import (
    FAST,
    SESSION_QUEUE,
    Workers,
    settings_env,
    wait_for,
    wait_status,
)
from tests.scaffolder.helpers import API
from tests.scaffolder.upgrade_helpers import (
    TEMPLATE_REF,
    VERSIONS_URL,
    appended,
    create,
    edited,
    git,
    put_version,
    release,
    rev,
    show,
    team_commit,
    upgrade,
    upgrade_done,
)

ANSWERS = ".rag-portal/answers.yml"
BRANCH_110 = "rag-portal/upgrade-1.1.0"


class UpgradePortal:
    def __init__(self, client: httpx.Client, settings: Settings, templates: Path) -> None:
        self.client = client
        self.settings = settings
        self.templates = templates

    def repo(self, name: str) -> Path:
        return self.settings.data_dir / "repos" / "upgrades" / f"{name}.git"

    def entity(self, name: str) -> dict:
        response = self.client.get(f"/api/catalog/entities/by-name/component/default/{name}")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def _upgrade_portal(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UpgradePortal]:
    # Its own schema, as on SQLite its own file: the session's scaffolder workers
    # (tests/scaffolder/conftest.py, alive once any test used them) sweep every task of the
    # session schema and would run this portal's tasks with their own data_dir.
    own = fresh_postgres_schema("t_upgrades") if backend == "postgresql" else nullcontext(None)
    with own as schema:
        yield from _start_upgrade_portal(backend, tmp_path_factory, schema)


def _start_upgrade_portal(
    backend: str, tmp_path_factory: pytest.TempPathFactory, schema: str | None
) -> Iterator[UpgradePortal]:
    root = tmp_path_factory.mktemp(f"upgrades-{backend}")
    templates = root / "templates"
    templates.mkdir()
    put_version(templates, "1.0.0")
    settings = make_settings(
        backend,
        root / "data",
        schema,
        templates_dir=templates,
        redis_url=REDIS_URL,
        celery_queue=f"{SESSION_QUEUE}-upgrades-{uuid.uuid4().hex[:6]}",
        **FAST,
    )
    upgrade_database(settings)
    live, server, thread = start_live_server(settings)
    workers = Workers(settings, root)
    workers.start(beat=True, concurrency=2)
    with live.client() as client:
        yield UpgradePortal(client, settings, templates)
    workers.stop_all()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def portal(_upgrade_portal: UpgradePortal) -> UpgradePortal:
    """Empty tables and repositories; the template folder back at 1.0.0, recorded."""
    settings = _upgrade_portal.settings
    truncate_all(settings)
    shutil.rmtree(settings.data_dir / "repos", ignore_errors=True)
    release(_upgrade_portal.client, _upgrade_portal.templates, "1.0.0")
    return _upgrade_portal


def _events(client: httpx.Client, task: dict) -> str:
    return "\n".join(
        e["body"].get("message", "") for e in client.get(f"{API}/tasks/{task['id']}/events").json()
    )


def test_generated_repository_records_template_version_and_answers(portal: UpgradePortal):
    task = create(portal.client, "orders", replicas=2, apiKey="s3cr3t-key-value")
    assert task["status"] == "completed", _events(portal.client, task)
    assert show(portal.repo("orders"), "main", ANSWERS), _events(portal.client, task)
    recorded = yaml.safe_load(show(portal.repo("orders"), "main", ANSWERS) or "")
    assert recorded["template"] == TEMPLATE_REF
    assert recorded["version"] == "1.0.0"
    assert recorded["answers"]["replicas"] == 2
    assert recorded["answers"]["name"] == "orders"
    # A field marked secret never reaches the repository.
    assert "apiKey" not in recorded["answers"]
    assert "s3cr3t" not in (show(portal.repo("orders"), "main", ANSWERS) or "")
    annotations = portal.entity("orders")["metadata"]["annotations"]
    assert annotations["backstage.io/source-template"] == TEMPLATE_REF
    assert annotations["rag-portal.io/template-version"] == "1.0.0"


def test_changed_template_with_the_same_version_is_refused(portal: UpgradePortal):
    folder = portal.templates / "versioned-service"
    config = folder / "skeleton" / "{{cookiecutter.name}}" / "app" / "config.yaml"
    config.write_text(config.read_text().replace("retries: 3", "retries: 5"))
    refused = portal.client.post(VERSIONS_URL)
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert "changed since version 1.0.0 was recorded" in message
    assert "raise spec.version" in message
    # Nothing can be created from the unrecorded content either.
    submitted = portal.client.post(
        f"{API}/tasks",
        json={
            "templateRef": TEMPLATE_REF,
            "values": {"name": "drifted", "owner": "group:default/team-a"},
        },
    )
    assert submitted.status_code == 409, submitted.text
    # A new version with the same change is fine, and every version stays renderable.
    release(portal.client, portal.templates, "1.1.0")
    listed = portal.client.get(VERSIONS_URL).json()
    assert [v["version"] for v in listed["versions"]] == ["1.1.0", "1.0.0"]
    assert listed["latest"] == "1.1.0"
    assert "60 s instead of 30 s" in listed["versions"][0]["changes"]


def test_clean_merge_keeps_the_team_edits_on_a_new_branch(portal: UpgradePortal, tmp_path: Path):
    create(portal.client, "billing")
    bare = portal.repo("billing")
    team_head = team_commit(
        bare,
        tmp_path / "billing",
        {
            "app/config.yaml": edited(bare, "app/config.yaml", "cache: memory", "cache: redis"),
            "README.md": appended(bare, "README.md", "\nOwned by team A.\n"),
            "team/notes.md": "our own file\n",
        },
        "team: redis cache, notes",
    )
    release(portal.client, portal.templates, "1.1.0")

    task = upgrade_done(portal.client, "component:default/billing")
    output = task["steps"][0]["output"]
    assert output["result"] == "merged"
    assert output["branch"] == BRANCH_110
    statuses = {f["path"]: f["status"] for f in output["files"]}
    assert statuses == {
        "ci/pipeline.yaml": "added",
        "app/config.yaml": "merged",
        ANSWERS: "merged",
    }
    # The default branch is untouched; the branch is one commit on top of it.
    assert show(bare, "main", "ci/pipeline.yaml") is None
    assert show(bare, "refs/heads/main", "team/notes.md") == "our own file\n"

    assert rev(bare, "main") == team_head
    assert rev(bare, f"{BRANCH_110}^") == team_head
    config = show(bare, BRANCH_110, "app/config.yaml") or ""
    assert "timeout_s: 60" in config and "cache: redis" in config  # both changes
    assert "Owned by team A." in (show(bare, BRANCH_110, "README.md") or "")
    assert show(bare, BRANCH_110, "team/notes.md") == "our own file\n"
    assert "{{" not in (show(bare, BRANCH_110, "ci/pipeline.yaml") or "{{")
    recorded = yaml.safe_load(show(bare, BRANCH_110, ANSWERS) or "")
    assert recorded["version"] == "1.1.0"
    log = _events(portal.client, task)
    assert "added      ci/pipeline.yaml" in log and "merged     app/config.yaml" in log


def test_conflict_leaves_markers_on_the_branch(portal: UpgradePortal, tmp_path: Path):
    create(portal.client, "search")
    bare = portal.repo("search")
    team_commit(
        bare,
        tmp_path / "search",
        {"app/config.yaml": edited(bare, "app/config.yaml", "timeout_s: 30", "timeout_s: 45")},
        "team: 45 s timeout",
    )
    release(portal.client, portal.templates, "1.1.0")
    task = upgrade_done(portal.client, "component:default/search")
    output = task["steps"][0]["output"]
    assert output["result"] == "conflicts"
    assert {"path": "app/config.yaml", "status": "conflicted"} in output["files"]
    assert {"path": "ci/pipeline.yaml", "status": "added"} in output["files"]
    config = show(bare, BRANCH_110, "app/config.yaml") or ""
    assert "<<<<<<< main\ntimeout_s: 45\n=======\ntimeout_s: 60\n>>>>>>> template-1.1.0" in config
    assert show(bare, "main", "app/config.yaml") is not None
    assert "<<<<<<<" not in (show(bare, "main", "app/config.yaml") or "")
    assert "conflicted app/config.yaml" in _events(portal.client, task)


def test_rerun_is_a_noop_and_a_merged_upgrade_is_up_to_date(portal: UpgradePortal, tmp_path: Path):
    create(portal.client, "ledger")
    bare = portal.repo("ledger")
    release(portal.client, portal.templates, "1.1.0")
    first = upgrade_done(portal.client, "component:default/ledger", toVersion="1.1.0")

    tip = rev(bare, BRANCH_110)
    assert first["steps"][0]["output"]["pushed"] is True

    again = upgrade_done(portal.client, "component:default/ledger", toVersion="1.1.0")
    assert again["steps"][0]["output"]["pushed"] is False
    assert "already holds this upgrade" in _events(portal.client, again)
    assert rev(bare, BRANCH_110) == tip

    # The team merges the branch: the service is on 1.1.0, and says so in the catalog.
    git("--git-dir", str(bare), "update-ref", "refs/heads/main", tip)
    answer = upgrade(portal.client, "component:default/ledger")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "up-to-date" and answer.json()["id"] is None
    annotations = portal.entity("ledger")["metadata"]["annotations"]
    assert annotations["rag-portal.io/template-version"] == "1.1.0"


def test_rename_and_a_new_required_question(portal: UpgradePortal, tmp_path: Path):
    create(portal.client, "wiki", replicas=3)
    bare = portal.repo("wiki")
    team_commit(
        bare,
        tmp_path / "wiki",
        {"docs/guide.md": appended(bare, "docs/guide.md", "\n## On call\n\nPage team A.\n")},
        "team: on-call section",
    )
    release(portal.client, portal.templates, "1.1.0")
    release(portal.client, portal.templates, "2.0.0")

    missing = upgrade(portal.client, "component:default/wiki")
    assert missing.status_code == 400, missing.text
    assert {d["path"] for d in missing.json()["error"]["details"]} == {"values.tier"}
    wrong = upgrade(portal.client, "component:default/wiki", values={"tier": "platinum"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"][0]["path"] == "values.tier"

    task = upgrade_done(portal.client, "component:default/wiki", values={"tier": "gold"})
    output = task["steps"][0]["output"]
    branch = "rag-portal/upgrade-2.0.0"
    assert output["result"] == "merged" and output["branch"] == branch
    renamed = {"path": "docs/handbook.md", "status": "added", "renamedFrom": "docs/guide.md"}
    assert renamed in output["files"]
    assert {"path": "docs/guide.md", "status": "deleted"} in output["files"]
    handbook = show(bare, branch, "docs/handbook.md") or ""
    assert "Page team A." in handbook  # the team's edit followed the rename
    assert show(bare, branch, "docs/guide.md") is None
    config = show(bare, branch, "app/config.yaml") or ""
    assert "tier: gold" in config and "replicas" not in config and "timeout_s: 60" in config
    recorded = yaml.safe_load(show(bare, branch, ANSWERS) or "")
    assert recorded["version"] == "2.0.0"
    assert recorded["answers"]["tier"] == "gold"
    assert "replicas" not in recorded["answers"]  # no longer asked
    assert "answer 'replicas' dropped" in _events(portal.client, task)


def test_repository_without_answers_file_is_adopted(portal: UpgradePortal, tmp_path: Path):
    create(portal.client, "legacy")
    bare = portal.repo("legacy")
    # As created before answers files existed: no file, no version annotation.
    team_commit(bare, tmp_path / "legacy", {ANSWERS: None}, "created before answers files")
    entity = portal.entity("legacy")
    entity["metadata"]["annotations"].pop("rag-portal.io/template-version")
    with make_session_factory(make_engine(portal.settings.database_url))() as session:
        from catalog.service import CatalogService

        location = entity["metadata"]["annotations"]["backstage.io/managed-by-location"]
        CatalogService(session).upsert_entities([entity], location_key=location)
        session.commit()
    release(portal.client, portal.templates, "1.1.0")

    asked = upgrade(portal.client, "component:default/legacy")
    assert asked.status_code == 400, asked.text
    assert asked.json()["error"]["details"][0]["path"] == "fromVersion"
    assert "1.0.0, 1.1.0" in asked.json()["error"]["message"]

    task = upgrade_done(portal.client, "component:default/legacy", fromVersion="1.0.0")
    output = task["steps"][0]["output"]
    assert output["result"] == "merged"
    assert {"path": ANSWERS, "status": "added"} in output["files"]
    assert {"path": "ci/pipeline.yaml", "status": "added"} in output["files"]
    # Unchanged files are not touched: only the template's change and the answers file.
    assert {f["path"] for f in output["files"]} == {ANSWERS, "ci/pipeline.yaml", "app/config.yaml"}
    recorded = yaml.safe_load(show(bare, BRANCH_110, ANSWERS) or "")
    assert recorded["version"] == "1.1.0" and recorded["answers"]["name"] == "legacy"


def test_adoption_infers_the_version_from_the_components_annotation(
    portal: UpgradePortal, tmp_path: Path
):
    """No answers file, but the Component says which version generated it: the upgrade
    needs no fromVersion, and a fromVersion that disagrees is refused."""
    create(portal.client, "annotated")
    bare = portal.repo("annotated")
    team_commit(bare, tmp_path / "annotated", {ANSWERS: None}, "answers file removed")
    assert (
        portal.entity("annotated")["metadata"]["annotations"]["rag-portal.io/template-version"]
        == "1.0.0"
    )
    release(portal.client, portal.templates, "1.1.0")

    disagrees = upgrade(portal.client, "component:default/annotated", fromVersion="1.1.0")
    assert disagrees.status_code == 400, disagrees.text
    assert disagrees.json()["error"]["details"][0]["path"] == "fromVersion"
    assert "the repository is on 1.0.0" in disagrees.json()["error"]["message"]

    task = upgrade_done(portal.client, "component:default/annotated")
    output = task["steps"][0]["output"]
    assert output["result"] == "merged", _events(portal.client, task)
    assert {"path": ANSWERS, "status": "added"} in output["files"]
    recorded = yaml.safe_load(show(bare, BRANCH_110, ANSWERS) or "")
    assert recorded["version"] == "1.1.0" and recorded["answers"]["name"] == "annotated"


def test_second_upgrade_of_the_same_service_at_once_is_refused(portal: UpgradePortal):
    create(portal.client, "queue")
    release(portal.client, portal.templates, "1.1.0")
    factory = make_session_factory(make_engine(portal.settings.database_url))
    # The first upgrade is submitted but its queue message not sent yet: it is running
    # as far as anyone can tell (the recovery sweep sends it a few seconds later).
    first = upgrades.submit_upgrade(
        portal.settings,
        factory,
        entity_ref="component:default/queue",
        user_ref="user:default/bootstrap",
        dispatch=lambda _task_id: None,
    )
    second = upgrade(portal.client, "component:default/queue")
    assert second.status_code == 409, second.text
    assert "already running" in second.json()["error"]["message"]
    task = wait_status(portal.client, first["id"], ("completed", "failed"), timeout=60)
    assert task["status"] == "completed", _events(portal.client, task)
    # Once it finished, the next one may start (and finds the branch already prepared).
    third = upgrade_done(portal.client, "component:default/queue")
    assert third["steps"][0]["output"]["pushed"] is False


def test_fleet_upgrade_of_five_services(portal: UpgradePortal, tmp_path: Path):
    names = [f"fleet-{i}" for i in range(5)]
    for name in names:
        create(portal.client, name)
    bare = portal.repo("fleet-1")
    team_commit(
        bare,
        tmp_path / "fleet-1",
        {"app/config.yaml": edited(bare, "app/config.yaml", "timeout_s: 30", "timeout_s: 90")},
        "team: 90 s",
    )
    release(portal.client, portal.templates, "1.1.0")
    release(portal.client, portal.templates, "2.0.0")
    drift = portal.client.get(VERSIONS_URL).json()
    assert drift["latest"] == "2.0.0" and drift["behind"] == 5
    assert {s["version"] for s in drift["services"]} == {"1.0.0"}
    assert {s["behind"] for s in drift["services"]} == {2}
    assert drift["versions"][-1]["services"] == sorted(names)

    started = portal.client.post(
        f"{API}/templates/default/template/versioned-service/upgrades",
        json={"values": {"tier": "silver"}},
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert len(body["upgrades"]) == 5 and body["refused"] == []

    def done() -> dict | None:
        summary = portal.client.get(f"{API}/fleet-upgrades/{body['id']}").json()
        return summary if summary["done"] else None

    summary = wait_for(done, timeout=180)
    assert summary["counts"]["up to date"] == 0, summary  # type: ignore[index]
    assert summary["counts"] == {  # type: ignore[index]
        "merged clean": 4,
        "conflicts": 1,
        "failed": 0,
        "running": 0,
        "up to date": 0,
    }
    conflicted = [s for s in summary["services"] if s["outcome"] == "conflicts"]  # type: ignore[index]
    assert [s["entityRef"] for s in conflicted] == ["component:default/fleet-1"]
    for name in names:
        assert show(portal.repo(name), "rag-portal/upgrade-2.0.0", "docs/handbook.md")
    # The template's page shows the same summary.
    page = portal.client.get(VERSIONS_URL).json()
    assert page["lastFleetUpgrade"]["counts"]["merged clean"] == 4
    # fleet-0's team merges its branch; a refresh reads the answers files back.
    bare = portal.repo("fleet-0")
    git(
        "--git-dir",
        str(bare),
        "update-ref",
        "refs/heads/main",
        rev(bare, "rag-portal/upgrade-2.0.0"),
    )
    refreshed = portal.client.post(f"{VERSIONS_URL}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert len(refreshed.json()["refreshed"]) == 5 and refreshed.json()["failed"] == []
    after = {s["name"]: s["version"] for s in portal.client.get(VERSIONS_URL).json()["services"]}
    assert after == {"fleet-0": "2.0.0", **{n: "1.0.0" for n in names[1:]}}


def test_command_line_upgrade(portal: UpgradePortal):
    create(portal.client, "cli-svc")
    release(portal.client, portal.templates, "1.1.0")

    def ragportal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "portal_backend.cli", "services", "upgrade", *args],
            env=settings_env(portal.settings),
            capture_output=True,
            text=True,
            timeout=120,
        )

    wrong = ragportal("cli-svc", "--to", "9.9.9")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "toVersion" in wrong.stderr and "9.9.9 is not recorded" in wrong.stderr
    done = ragportal("cli-svc")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "added      ci/pipeline.yaml" in done.stdout
    assert f"1.0.0 -> 1.1.0 on {BRANCH_110}" in done.stdout
    assert show(portal.repo("cli-svc"), BRANCH_110, "ci/pipeline.yaml")
    assert show(portal.repo("cli-svc"), "main", "ci/pipeline.yaml") is None


def test_entity_pages_show_drift_and_upgrade_with_the_button(portal: UpgradePortal):
    create(portal.client, "paged")
    release(portal.client, portal.templates, "1.1.0")
    page = portal.client.get("/catalog/default/component/paged/template-upgrade")
    assert page.status_code == 200, page.text
    assert "v1.0.0 → v1.1.0 available" in page.text
    assert "Requests time out after 60 s instead of 30 s." in page.text  # the changelog
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    posted = portal.client.post(
        "/catalog/default/component/paged/upgrade",
        data={"csrf": csrf.group(1), "to_version": "1.1.0"},
        follow_redirects=False,
    )
    assert posted.status_code == 303, posted.text
    task_id = posted.headers["location"].rsplit("/", 1)[1]
    assert wait_status(portal.client, task_id, ("completed", "failed"))["status"] == "completed"
    assert show(portal.repo("paged"), BRANCH_110, "ci/pipeline.yaml")

    template_page = portal.client.get(
        "/catalog/default/template/versioned-service/template-upgrade",
        headers={"HX-Request": "true"},
    )
    assert template_page.status_code == 200, template_page.text
    assert 'id="drift-table"' in template_page.text and "<html" not in template_page.text
    assert "Latest: <strong>v1.1.0</strong> · 1 service behind" in template_page.text
    assert "merged clean" in template_page.text  # the paged service's last upgrade
