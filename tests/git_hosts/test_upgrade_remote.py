"""A template upgrade of a repository that lives on a remote git host (a real git
smart-HTTP server with basic auth): the answers file is read from it, the upgrade branch
is pushed back to it with the secret store's token, its default branch is untouched, and
no token reaches a log line or the output."""

from __future__ import annotations

import subprocess
from pathlib import Path

from portal_backend.db import session_scope
from portal_backend.scaffolder import engine, rendering, store, upgrades, version_store
from portal_backend.scaffolder.actions.catalog import register_published
from portal_backend.scaffolder.registration import register_template_folder
from portal_backend.settings import Settings
from tests.git_hosts.conftest import TOKEN, store_secret
from tests.git_hosts.server import GitHttpServer
from tests.scaffolder.upgrade_helpers import GIT_ENV, TEMPLATE_REF, put_version, show


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_upgrade_branch_is_pushed_to_the_remote_host(
    settings: Settings, session_factory, tmp_path: Path, git_server: GitHttpServer
) -> None:  # type: ignore[no-untyped-def]
    bare = git_server.create_bare("team/svc.git")
    url = f"{git_server.url}/team/svc.git"
    store_secret(settings, session_factory, f"git-token:{git_server.netloc}", TOKEN)
    templates = tmp_path / "templates"
    remote = settings.model_copy(
        update={
            "templates_dir": templates,
            "scaffolder_git_hosts": {
                git_server.netloc: {"type": "git", "url": url, "username": "portal-bot"}
            },
        }
    )
    folder = put_version(templates, "1.0.0")
    register_template_folder(session_factory, folder / "template.yaml")

    # The repository as publish:git left it on the remote (answers file included).
    values = {"name": "svc", "owner": "group:default/team-a"}
    old = version_store.materialize(remote, session_factory, TEMPLATE_REF, "1.0.0")
    work = rendering.render(
        remote, session_factory, old, values, user_ref="user:default/a", workspace=tmp_path / "w"
    )
    recorded = engine.task_answers({**old.snapshot(), "version": "1.0.0"}, values, {})
    (work / ".rag-portal").mkdir()
    (work / ".rag-portal" / "answers.yml").write_text(recorded.to_yaml())
    _git("init", "--quiet", "-b", "main", cwd=work)
    _git("add", "--all", ".", cwd=work)
    _git("commit", "--quiet", "-m", "Initial commit", cwd=work)
    _git("push", "--quiet", str(bare), "main", cwd=work)
    head = (bare / "refs" / "heads" / "main").read_text().strip()
    contents = f"git+{url}#main"
    ref = register_published(f"{contents}/catalog-info.yaml", contents, remote, session_factory)
    assert ref == "component:default/svc"

    put_version(templates, "1.1.0")
    register_template_folder(session_factory, templates / "versioned-service" / "template.yaml")
    pending: list[str] = []
    answer = upgrades.submit_upgrade(
        remote,
        session_factory,
        entity_ref=ref,
        user_ref="user:default/a",
        dispatch=pending.append,
    )
    assert answer["fromVersion"] == "1.0.0" and answer["toVersion"] == "1.1.0"
    while pending:
        engine.run_next_step(remote, session_factory, pending.pop(0), "test", pending.append)
    with session_scope(session_factory) as session:
        task = store.get_task(session, answer["id"])
        assert task is not None and task.status == "completed", task and task.error
        output = store.get_steps(session, answer["id"])[0].output
        logs = [e.body for e in store.list_events(session, answer["id"], None)]
    assert output["result"] == "merged" and output["pushed"] is True
    assert show(bare, "rag-portal/upgrade-1.1.0", "ci/pipeline.yaml")
    assert (bare / "refs" / "heads" / "main").read_text().strip() == head
    pushes = [r for r in git_server.requests if "git-receive-pack" in r.path]
    assert pushes and all(r.authorization for r in pushes)
    assert TOKEN not in str(output) and TOKEN not in str(logs)
