"""The portal and ``ragportal worker`` processes of one benchmark run, started the way the
benchmarks that submit work over HTTP need them (no test fixtures).

One configuration per run: :func:`portal_env` builds the environment; the in-process
portal reads it as ``Settings`` (``settings_from``) and the worker processes get it as
their environment, so both sides see the same database, data folder and queue.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from portal_backend.app import create_app
from portal_backend.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "RAGPORTAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RAGPORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BOOTSTRAP_TOKEN = "bench-bootstrap-admin-token"


def portal_env(
    data_dir: Path, database_url: str | None, queue_prefix: str, **settings: str
) -> dict[str, str]:
    """This process's environment without any ``RAGPORTAL_*`` setting, plus the run's:
    data folder, bootstrap token, a fresh Celery queue, Redis, the database (SQLite under
    ``data_dir`` when None) and ``settings`` (``templates_dir="..."`` becomes
    ``RAGPORTAL_TEMPLATES_DIR``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGPORTAL_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "RAGPORTAL_DATA_DIR": str(data_dir),
            "RAGPORTAL_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
            "RAGPORTAL_CELERY_QUEUE": f"{queue_prefix}-{uuid.uuid4().hex[:8]}",
            "RAGPORTAL_LOG_LEVEL": "WARNING",
            "REDIS_URL": REDIS_URL,
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update({f"RAGPORTAL_{name.upper()}": value for name, value in settings.items()})
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a process started with ``env`` reads (this process's environment
    is updated to it, so anything reading Settings() later agrees)."""
    for name in [k for k in os.environ if k not in env]:
        del os.environ[name]
    os.environ.update(env)
    return Settings()


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot own signal handlers
        pass


@dataclass
class Portal:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"},
            timeout=timeout,
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(settings: Settings) -> Portal:
    """The portal (uvicorn) on a free port of 127.0.0.1, in a thread of this process;
    its start-up registers the templates of ``settings.templates_dir``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = _ThreadServer(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the portal did not start")
        time.sleep(0.02)
    return Portal(f"http://127.0.0.1:{port}", server, thread)


def start_workers(
    env: dict[str, str],
    count: int,
    log_dir: Path,
    *,
    concurrency: int = 1,
    beat: bool = True,
) -> list[subprocess.Popen]:
    """``count`` ``ragportal worker`` processes, each in its own process group and
    logging to ``log_dir/worker-<i>.log``; the first also runs beat when ``beat``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = []
    for i in range(count):
        command = [sys.executable, "-m", "portal_backend.cli", "worker"]
        command += ["--concurrency", str(concurrency)]
        if beat and i == 0:
            command.append("--beat")
        workers.append(
            subprocess.Popen(
                command,
                env=env,
                cwd=REPO_ROOT,
                start_new_session=True,
                stdout=(log_dir / f"worker-{i}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
        )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """SIGTERM each worker's process group (its pool children included), SIGKILL the
    ones still there after 20 s."""
    for worker in workers:
        if worker.poll() is not None:
            continue
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
