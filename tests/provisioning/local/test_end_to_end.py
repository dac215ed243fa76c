"""Create -> a running assistant on this machine -> ask it -> its SLA -> faults -> teardown.

The whole path with nothing stood in: the portal over HTTP, real Celery workers on Redis
running the shipped rag-service template's steps (cookiecutter, git, catalog), the local
runtime starting SmolLM2 on llama.cpp, the ingestion with MiniLM into Qdrant's local
mode and the generated API, whose usage push reaches the portal with its own ingest
token. Any broken link fails it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.provisioning.local import processes
from portal_backend.provisioning.local.runtime import service_dir
from portal_backend.provisioning.local.tables import RuntimeProcess
from portal_backend.settings import Settings
from tests.conftest import LiveServer, start_live_server
from tests.rag_template.template_flow import with_defaults
from tests.scaffolder.conftest import Workers, settings_env

NAME = "local-bot"
API = "/api/scaffolder/v2"


@contextmanager
def portal(settings: Settings, tmp_path: Path, port: int | None = None) -> Iterator[LiveServer]:
    """The portal and its workers (beat included: the runtime's supervisor)."""
    live, server, thread = start_live_server(settings, port)
    tmp_path.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings.model_copy(update={"runtime_portal_url": live.url}), tmp_path)
    workers.start(beat=True, concurrency=2)
    try:
        yield live
    finally:
        workers.stop_all()
        server.should_exit = True
        thread.join(timeout=10)


def _wait(check: Callable[[], object], what: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _process(settings: Settings, role: str) -> RuntimeProcess:
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        row = session.get(RuntimeProcess, (NAME, role))
        assert row is not None
        session.expunge(row)
        return row


def _deployment(client: httpx.Client) -> dict:
    entity = client.get(f"/api/catalog/entities/by-name/component/default/{NAME}").json()
    return (entity.get("status") or {}).get("deployment") or {}


def _requests(client: httpx.Client) -> int:
    report = client.get(f"/api/sla/services/component/default/{NAME}", params={"window": "1h"})
    return int(report.json()["slo"]["requests"]) if report.status_code == 200 else 0


def _ask(client: httpx.Client) -> dict:
    response = client.post(
        f"/api/rag/services/default/{NAME}/ask",
        json={"question": "What does the assistant do when no document passage is relevant?"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answer"].strip()
    sources = [c["source"] for c in answer["citations"]]
    assert any(s.endswith("getting-started.md") for s in sources), sources
    assert answer["usage"]["total_tokens"] > 0 and answer["latency_ms"] > 0
    assert answer["model"] == "smollm2-135m-instruct"
    return answer


def test_create_ask_survive_a_kill_and_a_portal_restart_then_tear_down(
    runtime_settings: Settings, tmp_path: Path
) -> None:
    settings = runtime_settings
    with portal(settings, tmp_path / "first") as live, live.client() as client:
        first_url = live.url
        values = with_defaults({"name": NAME, "owner": "group:default/team-a"})
        created = client.post(
            f"{API}/tasks", json={"templateRef": "template:default/rag-service", "values": values}
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        task = _wait(
            lambda: (
                (t := client.get(f"{API}/tasks/{task_id}").json())["status"]
                in ("completed", "failed", "cancelled")
                and t
            ),
            "the create task",
            timeout=600,
        )
        log = "\n".join(
            e["body"].get("message", "") for e in client.get(f"{API}/tasks/{task_id}/events").json()
        )
        assert task["status"] == "completed", log
        assert "deploying to the local runtime" in log
        assert f"{NAME} is Healthy on the local runtime: http://127.0.0.1:" in log

        # The catalog shows where it answers; the Ask path answers with a citation.
        record = client.get(f"/api/rag/services/default/{NAME}/deployment").json()
        assert record["state"] == "Healthy" and record["target"] == "local"
        endpoint = record["endpoint"]
        assert _deployment(client)["endpoint"] == endpoint
        assert httpx.get(f"{endpoint}/readyz").status_code == 200
        _ask(client)
        # The API pushed its usage with its own ingest token: the SLA panel has it.
        _wait(lambda: _requests(client) >= 1, "usage in the SLA report", timeout=60)
        # The command line asks the same way.
        asked = subprocess.run(
            [sys.executable, "-m", "portal_backend.cli", "services", "ask", NAME,
             "What does the assistant do when no document passage is relevant?"],
            env=settings_env(settings), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        assert "getting-started.md" in asked.stdout and " tokens" in asked.stdout
        _wait(lambda: _requests(client) >= 2, "the command line's question in the SLA report")

        # SIGKILL the API and take its port: Degraded with the reason, then back on
        # another port, Healthy, answering.
        api = _process(settings, "api")
        os.kill(api.pid or 0, signal.SIGKILL)
        # Its threads close its socket within milliseconds; the restart comes >= 0.5 s later.
        while not processes.port_is_free("127.0.0.1", api.port or 0):
            time.sleep(0.005)
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", api.port or 0))
        squatter.listen()
        try:
            degraded = _wait(
                lambda: (d := _deployment(client)).get("state") == "Degraded" and d,
                "Degraded after the kill",
            )
            assert "api killed by SIGKILL" in degraded["message"]
            healthy = _wait(
                lambda: (d := _deployment(client)).get("state") == "Healthy" and d,
                "Healthy after the restart",
            )
        finally:
            squatter.close()
        assert healthy["endpoint"] != endpoint
        restarted = _process(settings, "api")
        assert restarted.pid != api.pid and restarted.restarts == 1
        _ask(client)

    # The portal is down: its services are not.
    llm = _process(settings, "llm")
    api = _process(settings, "api")
    assert processes.is_alive(llm.pid, llm.started_ts) and processes.is_alive(
        api.pid, api.started_ts
    )

    # Restarted where its services push their usage.
    port = int(first_url.rsplit(":", 1)[1])
    with portal(settings, tmp_path / "second", port) as live, live.client() as client:
        time.sleep(3 * settings.runtime_supervise_interval_s)  # the new supervisor looked
        assert _process(settings, "api").pid == api.pid  # adopted, not restarted
        assert _deployment(client)["state"] == "Healthy"
        # The new portal's supervisor restarts what dies.
        os.kill(llm.pid or 0, signal.SIGKILL)
        _wait(lambda: _process(settings, "llm").pid != llm.pid, "the LLM restarted")
        _wait(lambda: _deployment(client).get("state") == "Healthy", "Healthy again")
        # The three answers of the first portal are all counted (the last one's batch may
        # have waited out the restart); read the count before asking, since the push can
        # land before the answer reaches this client.
        _wait(lambda: _requests(client) >= 3, "the first portal's answers in the SLA report")
        before = _requests(client)
        _ask(client)
        _wait(lambda: _requests(client) > before, "the new answer's usage")

        # Stop keeps the service (and costs nothing); Deploy starts it again, as a task.
        running = [_process(settings, role) for role in ("llm", "api")]
        stopped = client.post(f"/api/rag/services/default/{NAME}/stop")
        assert stopped.status_code == 200, stopped.text
        assert _deployment(client)["state"] == "Stopped"
        assert not any(processes.is_alive(p.pid, p.started_ts) for p in running)
        deploy = client.post(f"/api/rag/services/default/{NAME}/deploy", json={"target": "local"})
        assert deploy.status_code == 202, deploy.text
        redeployed = deploy.json()["taskId"]
        _wait(
            lambda: client.get(f"{API}/tasks/{redeployed}").json()["status"] == "completed",
            "the deploy task",
            timeout=300,
        )
        assert _deployment(client)["state"] == "Healthy"
        _ask(client)

        # Teardown: no process, port or file is left.
        final = [_process(settings, role) for role in ("llm", "api")]
        deleted = client.delete(f"/api/rag/services/default/{NAME}")
        assert deleted.status_code == 200, deleted.text
        assert f"component:default/{NAME}" in deleted.json()["deletedEntities"]
        for proc in final:
            assert not processes.is_alive(proc.pid, proc.started_ts), proc.role
            assert processes.port_is_free("127.0.0.1", proc.port or 0), proc.port
        assert not service_dir(settings, NAME).exists()
        assert client.get(f"/api/rag/services/default/{NAME}/deployment").status_code == 404
        asked = client.post(f"/api/rag/services/default/{NAME}/ask", json={"question": "hi"})
        assert asked.status_code == 404
