"""`ragportal serve` without REDIS_URL: one command runs the API and its own worker on the
filesystem queue; the worker stops with the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import BOOTSTRAP_TOKEN, free_port
from tests.scaffolder.conftest import FAST, FIXTURE_TEMPLATES, wait_for, wait_status
from tests.scaffolder.helpers import commit_count, repos, submit


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_serve_runs_an_embedded_worker_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGPORTAL_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        RAGPORTAL_DATA_DIR=str(tmp_path / "data"),
        RAGPORTAL_PORT=str(port),
        RAGPORTAL_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        RAGPORTAL_TEMPLATES_DIR=str(FIXTURE_TEMPLATES),
        RAGPORTAL_LOG_LEVEL="WARNING",
        **{f"RAGPORTAL_{k.upper()}": str(v) for k, v in FAST.items()},
    )
    log = (tmp_path / "serve.log").open("w")
    workdir = tmp_path / "cwd"  # the queue must live in the data folder, not where serve runs
    workdir.mkdir()
    serve = subprocess.Popen(
        [sys.executable, "-m", "portal_backend.cli", "serve"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"},
            timeout=30,
        )

        def up() -> bool:
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60)
        children = subprocess.run(
            ["ps", "--ppid", str(serve.pid), "-o", "pid="], capture_output=True, text=True
        ).stdout.split()
        assert children, "serve started no worker process"
        task_id = submit(client, "embedded").json()["id"]
        task = wait_status(client, task_id, ("completed", "failed"), timeout=90)
        assert task["status"] == "completed", task
        settings_like = type("S", (), {"data_dir": tmp_path / "data"})
        [repo] = repos(settings_like)  # type: ignore[arg-type]
        assert commit_count(repo) == 1
        assert list(workdir.iterdir()) == []
        assert (tmp_path / "data" / "queue" / "control").is_dir()
        client.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    wait_for(lambda: not any(_alive(int(pid)) for pid in children), 30)
