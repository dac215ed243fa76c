"""One task's steps on two real worker processes that share no folder (as the Helm chart's
pods with their own emptyDir data folders): the workspace reaches the second worker
through the database, and what it publishes is what the first worker rendered."""

from __future__ import annotations

from pathlib import Path

from tests.scaffolder.conftest import wait_for, wait_status
from tests.scaffolder.helpers import API, commit_count, git, repos, submit


def test_steps_on_two_workers_with_separate_data_folders_complete(isolated_portal) -> None:  # type: ignore[no-untyped-def]
    portal = isolated_portal()
    client = portal.client
    first = portal.workers.start(beat=False, concurrency=1)
    task_id = submit(client, "two-workers", waitSeconds=3).json()["id"]

    def in_wait_step() -> bool:
        steps = client.get(f"{API}/tasks/{task_id}").json()["steps"]
        return any(s["id"] == "wait" and s["status"] == "processing" for s in steps)

    wait_for(in_wait_step, 60)
    # The first worker stops mid-task (its wait step finishes, or the second worker takes
    # it over); every later step runs on the second worker.
    first.stop()

    elsewhere = Path(portal.settings.data_dir).parent / "second-worker-data"
    second_settings = portal.settings.model_copy(
        update={"data_dir": elsewhere, "database_url_override": portal.settings.database_url}
    )
    portal.workers.start(beat=True, concurrency=1, settings=second_settings)
    task = wait_status(client, task_id, ("completed", "failed"), timeout=90)
    assert task["status"] == "completed", client.get(f"{API}/tasks/{task_id}/events").json()

    from portal_backend.db import make_engine, make_session_factory
    from portal_backend.scaffolder.tables import ScaffolderStep, ScaffolderWorkspace

    engine = make_engine(portal.settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            ran_on = {
                s.step_id: s.worker
                for s in session.query(ScaffolderStep).filter_by(task_id=task_id)
                if s.status == "completed"
            }
            # A completed task leaves no saved workspace behind.
            assert session.get(ScaffolderWorkspace, task_id) is None
    finally:
        engine.dispose()
    # The first worker rendered; the second (another process) renamed, published, registered.
    assert ran_on["fetch"] not in {ran_on[s] for s in ("rename", "publish", "register")}
    # The first worker rendered into its own folder (where the rename never happened).
    first_copy = Path(portal.settings.data_dir) / "workspaces" / task_id
    assert (first_copy / "NOTES.md").is_file() and not (first_copy / "docs" / "NOTES.md").exists()

    # The first worker's data folder holds no repository: the second one published it.
    assert repos(portal.settings) == []
    [repo] = repos(second_settings)
    assert commit_count(repo) == 1
    files = set(git(repo, "ls-tree", "-r", "--name-only", "main").split())
    # Rendered by the first worker, renamed and cleaned by the second.
    assert "docs/NOTES.md" in files and "NOTES.md" not in files and "scratch.txt" not in files
    assert git(repo, "show", "main:README.md").startswith("# two-workers")
    events = client.get(f"{API}/tasks/{task_id}/events").json()
    assert any("Workspace restored as step" in str(e["body"]) for e in events)
