"""A created service pushes its usage to the portal, with nothing set by hand.

The path a real cluster runs, link by link: the form goes through the real scaffolder
(template -> task -> every step, in-process) with an admin's price table; rag:provision
applies the bundle to the Kubernetes emulator, creating the ingest-token Secret; the
rendered API and ingestion then run as processes with exactly the environment their
workloads get from the objects the emulator holds (ConfigMap, Secrets; resolved by
provisioning.workload_env as the kubelet would). Only network addresses change: Qdrant
becomes local mode, the LLM a llama.cpp server of SmolLM2, and the portal is the live
test portal, which is already what the rendered RAGPORTAL_URL says (service_portal_url).
Questions are asked, one through a LoRA adapter, and the usage shows up in the portal's
SLA API, per adapter.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.provisioning.workload_env import container_environment, find_workload
from portal_backend.scaffolder import engine, store
from portal_backend.scaffolder.tables import ScaffolderEvent
from portal_backend.settings import Settings
from portal_backend.sla import costs
from portal_backend.sla.clock import utcnow
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer, free_port, start_live_server
from tests.k8s_emulator import EmulatedCluster
from tests.processes import stop_process_group
from tests.rag_template.conftest import VENV, generated_venv  # noqa: F401  (fixture)

NAME = "usage-bot"
REF = f"component:default/{NAME}"
ADAPTER = "support-tone"
L4_PRICE = 0.93  # the admin's price: the rendered cost rules must carry it

# One database is enough for a test this heavy: the production one.
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def portal(k8s_settings: Settings, session_factory) -> Iterator[tuple[LiveServer, Settings]]:  # type: ignore[no-untyped-def]
    live, server, thread = start_live_server(k8s_settings)
    # What an operator sets: where services reach the portal, and where images live.
    settings = k8s_settings.model_copy(
        update={"service_portal_url": live.url, "image_registry": "registry.example.test/rag"}
    )
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(
            [
                {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Group",
                    "metadata": {"name": "team-a"},
                    "spec": {"type": "team", "children": []},
                }
            ]
        )
        SecretStore(session, settings).set(GLOBAL, "hf-token", "hf_never_used_here")
        costs.set_prices(
            session, {**costs.DEFAULT_PRICES, "gpu:nvidia-l4": L4_PRICE}, utcnow(), "admin"
        )
    try:
        yield live, settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _run_task(settings: Settings, factory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The real scaffolder: submit, then run each queued step as a worker would."""
    queue: list[str] = []
    task_id = engine.submit(
        settings,
        factory,
        template_ref="template:default/rag-service",
        values={
            "name": NAME,
            "owner": "group:default/team-a",
            "cpu_fallback_enabled": False,
            "lora_adapters": [{"name": ADAPTER, "source": "acme/support-tone-lora", "rank": 16}],
        },
        secrets=None,
        user_ref="user:default/alice",
        dispatch=queue.append,
    )
    while queue:
        engine.run_next_step(settings, factory, queue.pop(0), "worker-1", queue.append)
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        steps = {s.step_id: s.output for s in store.get_steps(session, task_id)}
        events = [
            e.body.get("message", "")
            for e in session.scalars(
                select(ScaffolderEvent)
                .where(ScaffolderEvent.task_id == task_id)
                .order_by(ScaffolderEvent.id)
            )
        ]
        return {"status": task.status, "steps": steps, "log": events}


def _process_env(repo: Path, home: Path, container: dict[str, str]) -> dict[str, str]:
    """A process environment that is the container's, plus what any process needs to run
    here (PATH, HOME) and the offline switches for the test machine."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": str(repo),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **container,
    }


def _start(args: list[str], repo: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [str(VENV / "bin" / "python"), *args],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: process exited\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not up after {seconds}s\n{log.read_text()[-3000:]}")


@pytest.mark.usefixtures("generated_venv")
def test_a_deployed_service_pushes_usage_the_portal_reports(  # type: ignore[no-untyped-def]
    portal, cluster: EmulatedCluster, session_factory, tmp_path: Path
) -> None:
    live, settings = portal
    task = _run_task(settings, session_factory)
    assert task["status"] == "completed", "\n".join(task["log"])

    # The portal's own price table reached the render (one price table).
    repo = tmp_path / "repo"
    subprocess.run(
        ["git", "clone", "-q", task["steps"]["publish"]["remoteUrl"], str(repo)], check=True
    )
    rules = (repo / "monitoring" / "prometheus-rules.yaml").read_text()
    assert f"* 1 * {L4_PRICE}" in rules

    # What the cluster holds, and the environment the kubelet would give the API.
    objects = cluster.labelled(f"{SERVICE_LABEL}={NAME}")
    api = find_workload(objects, "api")
    env = container_environment(objects, api, pod_fields={"metadata.namespace": NAME})
    assert env.values["RAGPORTAL_URL"] == live.url  # the setting, not a default
    assert {"RAGPORTAL_INGEST_TOKEN", "QDRANT_API_KEY"} <= env.secret_names
    assert env.values["RAGPORTAL_INGEST_TOKEN"].startswith("rp_")
    assert json.loads(env.values["LORA_ADAPTERS"]) == [ADAPTER]
    vllm = find_workload(objects, "model-server")
    args = vllm["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--lora-modules") + 1] == f"{ADAPTER}=acme/support-tone-lora"

    # Network addresses only: Qdrant local mode (ingestion and API share its folder in
    # turn), SmolLM2 on llama.cpp for vLLM; the portal address stays as rendered.
    qdrant = tmp_path / "qdrant"
    home = tmp_path / "home"
    home.mkdir()
    addresses = {"QDRANT_URL": "", "QDRANT_PATH": str(qdrant)}
    ingestion = find_workload(objects, "ingestion", ("Job",))
    ingestion_env = container_environment(objects, ingestion)
    ingested = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "ingestion", "--json"],
        cwd=repo,
        env=_process_env(repo, home, {**ingestion_env.values, **addresses}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    assert json.loads(ingested.stdout)["chunks_added"] > 0

    gguf = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import app.local_models as m; print(m.smollm2_gguf())",
        ],
        cwd=repo,
        env=_process_env(repo, home, {}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    llm_port, api_port = free_port(), free_port()
    llm_log, api_log = tmp_path / "llm.log", tmp_path / "api.log"
    llm = _start(
        ["-m", "app.llm_server", "--model", gguf, "--host", "127.0.0.1",
         "--port", str(llm_port), "--n_ctx", "4096"],
        repo, _process_env(repo, home, {}), llm_log,
    )  # fmt: skip
    api_process = None
    try:
        _wait(f"http://127.0.0.1:{llm_port}/v1/models", llm, llm_log)
        container = {
            **env.values,
            **addresses,
            "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
        }
        command = env.command  # uvicorn app.main:app --host 0.0.0.0 --port 8080
        assert command[:2] == ["uvicorn", "app.main:app"]
        api_process = _start(
            ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(api_port)],
            repo, _process_env(repo, home, container), api_log,
        )  # fmt: skip
        base = f"http://127.0.0.1:{api_port}"
        _wait(f"{base}/healthz", api_process, api_log)
        question = "How do I rotate the Qdrant API key?"
        plain = httpx.post(f"{base}/query", json={"question": question}, timeout=300)
        assert plain.status_code == 200, plain.text
        tuned = httpx.post(
            f"{base}/query", json={"question": question, "adapter": ADAPTER}, timeout=300
        )
        assert tuned.status_code == 200, tuned.text
        # The LLM server answered under the name the API asked for: the adapter's.
        assert tuned.json()["model"] == ADAPTER
        assert plain.json()["model"] == "llama-3-8b-instruct"
        unknown = httpx.post(
            f"{base}/query", json={"question": question, "adapter": "legal"}, timeout=60
        )
        assert unknown.status_code == 422 and ADAPTER in unknown.text

        # The usage arrives in the portal's SLA API (pushed within the flush interval).
        deadline = time.monotonic() + 60
        report: dict[str, Any] = {}
        with live.client(token=BOOTSTRAP_TOKEN) as client:
            while time.monotonic() < deadline:
                report = client.get(f"/api/sla/services/component/default/{NAME}").json()
                if report.get("slo", {}).get("requests", 0) >= 2:
                    break
                time.sleep(1)
        # Two answered; the refused request (422) was never served, so not pushed.
        assert report["slo"]["requests"] == 2, (report, api_log.read_text()[-3000:])
        assert report["slo"]["tokens"]["total"] > 0
        by_adapter = {row["adapter"]: row for row in report["usageByAdapter"]}
        assert by_adapter[ADAPTER]["requests"] == 1
        assert by_adapter[ADAPTER]["completionTokens"] > 0
        log = api_log.read_text()
        assert "usage push to rag-portal is OFF" not in log
    finally:
        if api_process is not None:
            stop_process_group(api_process)
        stop_process_group(llm)
