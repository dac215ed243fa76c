"""Faults: a worker SIGKILLed in the middle of a step, and Redis restarted with tasks
queued. Real worker processes, real Redis; the database is the source of truth, so the
recovery sweep finishes every task exactly once. Each test has its own database and
queue, so no other worker can help it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port
from tests.scaffolder.conftest import wait_for, wait_status
from tests.scaffolder.helpers import API, commit_count, repos, submit


def test_worker_killed_mid_step_task_completes_exactly_once(isolated_portal) -> None:  # type: ignore[no-untyped-def]
    portal = isolated_portal()
    client = portal.client
    doomed = portal.workers.start(beat=False, concurrency=1)
    task_id = submit(client, "survivor", waitSeconds=4).json()["id"]

    def in_wait_step() -> bool:
        steps = client.get(f"{API}/tasks/{task_id}").json()["steps"]
        return any(s["id"] == "wait" and s["status"] == "processing" for s in steps)

    wait_for(in_wait_step, 60)
    doomed.kill()  # SIGKILL to the worker and its pool child, mid-step

    portal.workers.start(beat=True, concurrency=1)
    task = wait_status(client, task_id, ("completed", "failed"), timeout=90)
    assert task["status"] == "completed", task
    attempts = {s["id"]: s["attempts"] for s in task["steps"]}
    assert attempts["wait"] == 2 and attempts["fetch"] == 1 and attempts["publish"] == 1
    events = client.get(f"{API}/tasks/{task_id}/events").json()
    assert [e["type"] for e in events].count("completion") == 1
    assert any(e["type"] == "recovered" for e in events)

    [repo] = repos(portal.settings)
    assert commit_count(repo) == 1
    found = client.get(
        "/api/catalog/entities/by-query", params={"filter": "metadata.name=survivor"}
    ).json()
    assert found["totalItems"] == 1


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A redis-server of our own on a free port (no persistence), and a restart function."""
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    state = {"process": subprocess.Popen(command, stdout=subprocess.DEVNULL)}

    def ready() -> bool:
        try:
            return bool(redis.Redis(port=port).ping())
        except redis.ConnectionError:
            return False

    wait_for(ready, 15, 0.05)

    def restart() -> None:
        state["process"].terminate()
        state["process"].wait(timeout=15)
        state["process"] = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(ready, 15, 0.05)

    yield f"redis://127.0.0.1:{port}/0", restart
    state["process"].terminate()
    state["process"].wait(timeout=15)


def test_redis_restart_with_queued_tasks_loses_none(isolated_portal, private_redis) -> None:  # type: ignore[no-untyped-def]
    redis_url, restart = private_redis
    portal = isolated_portal(redis_url)
    client = portal.client
    ids = [submit(client, f"queued-{i}").json()["id"] for i in range(4)]
    # Nothing consumes yet: the messages sit in Redis, which now loses them all.
    assert redis.Redis.from_url(redis_url).dbsize() > 0
    restart()
    assert redis.Redis.from_url(redis_url).dbsize() == 0
    portal.workers.start(beat=True, concurrency=2)
    for task_id in ids:
        task = wait_status(client, task_id, ("completed", "failed"), timeout=90)
        assert task["status"] == "completed", task
    assert [r.name for r in repos(portal.settings)] == [f"queued-{i}.git" for i in range(4)]
    assert all(commit_count(r) == 1 for r in repos(portal.settings))
    for task_id in ids:
        events = client.get(f"{API}/tasks/{task_id}/events").json()
        assert [e["type"] for e in events].count("completion") == 1


def test_submit_while_redis_is_down_is_accepted_and_runs_later(isolated_portal) -> None:  # type: ignore[no-untyped-def]
    """The task row is the record: a broker outage at submit time only delays the task."""
    port = free_port()
    portal = isolated_portal(f"redis://127.0.0.1:{port}/0")
    started = time.monotonic()
    created = submit(portal.client, "late-bloomer")
    assert created.status_code == 201, created.text
    assert time.monotonic() - started < 30
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        portal.workers.start(beat=True, concurrency=1)
        task = wait_status(portal.client, created.json()["id"], ("completed", "failed"), 90)
        assert task["status"] == "completed"
    finally:
        portal.workers.stop_all()
        server.terminate()
        server.wait(timeout=15)
