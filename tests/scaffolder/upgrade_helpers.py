"""Helpers of the template-upgrade tests: releasing versions of the test template into the
portal's templates folder, team commits on a generated repository, upgrade requests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx

from tests.scaffolder.conftest import wait_status
from tests.scaffolder.helpers import API

VERSIONS = Path(__file__).resolve().parents[1] / "fixtures" / "template_versions"
TEMPLATE = "versioned-service"
TEMPLATE_REF = f"template:default/{TEMPLATE}"
VERSIONS_URL = f"{API}/templates/default/template/{TEMPLATE}/versions"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Team A",
    "GIT_AUTHOR_EMAIL": "team-a@example.com",
    "GIT_COMMITTER_NAME": "Team A",
    "GIT_COMMITTER_EMAIL": "team-a@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def put_version(templates_dir: Path, version: str, name: str = TEMPLATE) -> Path:
    """The template folder becomes ``version`` of the test template (as a platform team
    editing scaffolder_templates/ would leave it)."""
    folder = templates_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(VERSIONS / TEMPLATE / version, folder)
    return folder


def release(client: httpx.Client, templates_dir: Path, version: str) -> dict:
    put_version(templates_dir, version)
    response = client.post(VERSIONS_URL)
    assert response.status_code in (200, 201), response.text
    return response.json()


def create(client: httpx.Client, name: str, **values: object) -> dict:
    response = client.post(
        f"{API}/tasks",
        json={
            "templateRef": TEMPLATE_REF,
            "values": {"name": name, "owner": "group:default/team-a", **values},
        },
    )
    assert response.status_code == 201, response.text
    return wait_status(client, response.json()["id"], ("completed", "failed"))


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {result.stderr}")
    return result.stdout


def show(bare: Path, ref: str, path: str) -> str | None:
    result = subprocess.run(
        ["git", "--git-dir", str(bare), "show", f"{ref}:{path}"], capture_output=True, text=True
    )
    return result.stdout if result.returncode == 0 else None


def edited(bare: Path, path: str, old: str, new: str) -> str:
    """``path`` of the default branch with ``old`` replaced by ``new`` (``old`` must be
    there: the edit is real)."""
    content = show(bare, "main", path)
    assert content is not None and old in content, content
    return content.replace(old, new)


def appended(bare: Path, path: str, text: str) -> str:
    content = show(bare, "main", path)
    assert content is not None
    return content + text


def rev(bare: Path, ref: str) -> str:
    return git("--git-dir", str(bare), "rev-parse", ref).strip()


def team_commit(bare: Path, work: Path, edits: dict[str, str | None], message: str) -> str:
    """A product team's commit on the default branch: file -> new content (None deletes)."""
    if not work.exists():
        git("clone", "--quiet", str(bare), str(work))
    git("pull", "--quiet", "origin", "main", cwd=work)
    for path, content in edits.items():
        target = work / path
        if content is None:
            git("rm", "--quiet", path, cwd=work)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        git("add", path, cwd=work)
    git("commit", "--quiet", "-m", message, cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def upgrade(client: httpx.Client, entity: str, **body: object) -> httpx.Response:
    return client.post(f"{API}/upgrades", json={"entityRef": entity, **body})


def upgrade_done(client: httpx.Client, entity: str, **body: object) -> dict:
    response = upgrade(client, entity, **body)
    assert response.status_code == 201, response.text
    task = wait_status(client, response.json()["id"], ("completed", "failed"), timeout=120)
    assert task["status"] == "completed", client.get(f"{API}/tasks/{task['id']}/events").json()
    return task
