"""Faults under a scaffolder task (issue 22): PostgreSQL restarted while a step runs in
a worker, and the disk under the data folder full while the skeleton renders.

Real worker processes (``ragportal worker``, Celery on the shared Redis with a queue of
this test's own), the portal and workers on the test's own PostgreSQL server. Redis
restarted with tasks queued: tests/scaffolder/test_recovery.py (its own redis-server).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from portal_backend.db import upgrade_database
from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN, REDIS_URL, start_live_server
from tests.faults.conftest import PrivatePostgres
from tests.scaffolder.conftest import FAST, FIXTURE_TEMPLATES, Workers, wait_for
from tests.scaffolder.helpers import API, commit_count, repos, submit


@dataclass
class ScaffolderPortal:
    client: httpx.Client
    settings: Settings
    workers: Workers


@pytest.fixture
def scaffolder_portal(fresh_database: str, tmp_path: Path) -> Iterator[ScaffolderPortal]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url_override=fresh_database,
        bootstrap_token=BOOTSTRAP_TOKEN,
        log_json=False,
        log_level="WARNING",
        templates_dir=FIXTURE_TEMPLATES,
        redis_url=REDIS_URL,
        celery_queue=f"faults-{uuid.uuid4().hex[:10]}",
        catalog_refresh_interval_s=0,
        runtime_enabled=False,
        **FAST,
    )
    settings.data_dir.mkdir(parents=True)
    upgrade_database(settings)
    live, server, thread = start_live_server(settings)
    workers = Workers(settings, tmp_path)
    client = live.client()
    yield ScaffolderPortal(client, settings, workers)
    workers.stop_all()
    client.close()
    server.should_exit = True
    thread.join(timeout=10)


def wait_status(
    client: httpx.Client, task_id: str, statuses: tuple[str, ...], timeout: float
) -> dict:
    """The task once in one of ``statuses``. Right after a restart, the one request that
    meets a pooled connection the server closed answers 503 (and the pool reconnects):
    polling goes on over it."""
    seen: list[int] = []

    def check() -> dict | None:
        answer = client.get(f"{API}/tasks/{task_id}")
        seen.append(answer.status_code)
        if answer.status_code == 503:
            assert "database is unavailable" in answer.json()["error"]["message"]
            return None
        assert answer.status_code == 200, answer.text
        task: dict = answer.json()
        return task if task["status"] in statuses else None

    task = wait_for(check, timeout)
    assert seen.count(503) <= 1, seen  # one stale connection, then the pool reconnected
    assert isinstance(task, dict)
    return task


def _step_running(client: httpx.Client, task_id: str, step: str) -> bool:
    steps = client.get(f"{API}/tasks/{task_id}").json()["steps"]
    return any(s["id"] == step and s["status"] == "processing" for s in steps)


def _entities_named(client: httpx.Client, name: str) -> int:
    found = client.get("/api/catalog/entities/by-query", params={"filter": f"metadata.name={name}"})
    assert found.status_code == 200, found.text
    return int(found.json()["totalItems"])


def test_postgres_restarted_during_a_step(
    scaffolder_portal: ScaffolderPortal, private_postgres: PrivatePostgres
) -> None:
    """The worker loses its database mid-step (heartbeats and the step's end fail);
    once it is back, the task finishes exactly once: one commit, one entity."""
    portal = scaffolder_portal
    client = portal.client
    portal.workers.start(beat=True, concurrency=1)
    task_id = submit(client, "outlasts-restart", waitSeconds=4).json()["id"]
    wait_for(lambda: _step_running(client, task_id, "wait"), 60)

    private_postgres.restart(down_s=3.0)  # longer than a heartbeat, shorter than the step

    task = wait_status(client, task_id, ("completed", "failed"), timeout=120)
    log = "\n".join(w.log.read_text() for w in portal.workers.started)
    assert task["status"] == "completed", (task, log[-4000:])
    [repo] = repos(portal.settings)
    assert commit_count(repo) == 1
    assert _entities_named(client, "outlasts-restart") == 1
    events = client.get(f"{API}/tasks/{task_id}/events").json()
    assert [e["type"] for e in events].count("completion") == 1

    # The same portal and worker take the next task without a restart.
    submitted = submit(client, "after-restart")
    assert submitted.status_code == 201, submitted.text
    after = submitted.json()["id"]
    assert wait_status(client, after, ("completed", "failed"), timeout=90)["status"] == "completed"


@pytest.fixture
def small_disk(scaffolder_portal: ScaffolderPortal) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted on the data folder's workspaces (where skeletons render),
    so a full disk is the kernel's own ENOSPC. Needs mount rights (root, as on CI)."""
    target = scaffolder_portal.settings.data_dir / "workspaces"
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs needs root (the CI job runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)], check=True)
    yield target
    subprocess.run(["umount", "-l", str(target)], check=True)


def test_disk_full_during_a_render(scaffolder_portal: ScaffolderPortal, small_disk: Path) -> None:
    portal = scaffolder_portal
    client = portal.client
    filler = small_disk / "filler"
    # Fill the file system to its last block: the render's first write fails.
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    portal.workers.start(beat=True, concurrency=1)
    task_id = submit(client, "no-room").json()["id"]
    task = wait_status(client, task_id, ("completed", "failed"), timeout=90)
    assert task["status"] == "failed", task
    events = client.get(f"{API}/tasks/{task_id}/events").json()
    messages = " ".join(str(e["body"]) for e in events)
    assert "No space left on device" in messages, messages[-2000:]
    # Nothing half-written: no repository, no entity, no half-rendered workspace.
    assert repos(portal.settings) == []
    assert _entities_named(client, "no-room") == 0
    # The skeleton renders into a temporary folder moved in whole: the task's workspace
    # is left empty, and the temporary folder is gone.
    left = [p.relative_to(small_disk) for p in small_disk.rglob("*") if p.name != "filler"]
    assert [str(p) for p in left] in ([], [task_id]), left

    # Room again: the same task, retried on the same portal and worker, completes.
    filler.unlink()
    retried = client.post(f"{API}/tasks/{task_id}/retry")
    assert retried.status_code == 201, retried.text
    task = wait_status(client, retried.json()["id"], ("completed", "failed"), timeout=90)
    assert task["status"] == "completed", task
    [repo] = repos(portal.settings)
    assert commit_count(repo) == 1
    assert _entities_named(client, "no-room") == 1
    shutil.rmtree(small_disk / retried.json()["id"], ignore_errors=True)
