"""Local runtime benchmark: from "Create" to the first answer, and the Ask path's latency.

    .venv/bin/python benchmarks/local_runtime.py --asks 20

Starts the portal exactly as ``make serve`` does (``ragportal serve``: SQLite, the
embedded worker, no cluster) in a fresh data folder, with the local runtime's
environment already built (``RAGPORTAL_RUNTIME_ENVS_DIR``, default build/runtime-envs:
what ``scripts/setup.d/30-generated-repo-env.sh`` builds). Registers a team, submits the
rag-service template with its defaults through the API, and measures:

- submit -> task completed (the service Healthy on the local runtime) -> first answer
  through ``POST /api/rag/services/default/<name>/ask``;
- ``--asks`` more questions through the same path (the service's own ``/query``:
  SmolLM2-135M on llama.cpp, answers of at most ``RAGPORTAL_RUNTIME_MAX_TOKENS`` = 200
  tokens): latency p50/p95 as the portal sees it, and the API's own ``latency_ms``.

Then deletes the service and checks that no process of it is left.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What does the assistant do when no document passage is relevant?",
    "How do I send a question to the /query endpoint?",
    "Which vector database stores the document chunks?",
    "How many dimensions do the all-MiniLM-L6-v2 embedding vectors have?",
    "What does a re-run of the ingestion write when nothing changed?",
    "Which Prometheus metrics does the API export?",
    "How do I rotate the Qdrant API key?",
    "Can the model be fine-tuned with LoRA adapters?",
]
TEAM = """apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-a
spec:
  type: team
  children: []
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=20)
    parser.add_argument(
        "--envs-dir", type=Path, default=REPO_ROOT / "build" / "runtime-envs",
        help="where the runtime environment was built",
    )  # fmt: skip
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ragportal-bench-"))
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGPORTAL_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(
        RAGPORTAL_DATA_DIR=str(data),
        RAGPORTAL_BOOTSTRAP_TOKEN=token,
        RAGPORTAL_BASE_URL=f"http://127.0.0.1:{port}",
        RAGPORTAL_RUNTIME_ENVS_DIR=str(args.envs_dir.resolve()),
        RAGPORTAL_LOG_LEVEL="WARNING",
    )
    (data / "teams.yaml").write_text(TEAM)
    log = (data / "serve.log").open("w")
    serve = subprocess.Popen(
        [str(REPO_ROOT / ".venv" / "bin" / "ragportal"), "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or serve.poll() is not None:
                raise SystemExit(f"the portal did not start; see {data / 'serve.log'}")
            time.sleep(0.2)
        registered = client.post(
            "/api/catalog/locations", json={"type": "file", "target": str(data / "teams.yaml")}
        )
        assert registered.status_code == 201, registered.text
        name = "bench-bot"
        submitted = time.monotonic()
        task = client.post(
            "/api/scaffolder/v2/tasks",
            json={
                "templateRef": "template:default/rag-service",
                "values": {"name": name, "owner": "group:default/team-a"},
            },
        )
        assert task.status_code == 201, task.text
        task_id = task.json()["id"]
        while (status := client.get(f"/api/scaffolder/v2/tasks/{task_id}").json()["status"]) in (
            "open",
            "processing",
        ):
            time.sleep(0.2)
        healthy = time.monotonic()
        if status != "completed":
            events = client.get(f"/api/scaffolder/v2/tasks/{task_id}/events").json()
            raise SystemExit(
                f"task {status}:\n" + "\n".join(e["body"].get("message", "") for e in events)
            )
        first = client.post(
            f"/api/rag/services/default/{name}/ask", json={"question": QUESTIONS[0]}
        )
        answered = time.monotonic()
        assert first.status_code == 200, first.text
        print(f"submit -> Healthy: {healthy - submitted:.1f} s")
        print(f"submit -> first answer: {answered - submitted:.1f} s  (goal <= 60 s)")

        portal_ms: list[float] = []
        service_ms: list[float] = []
        tokens: list[int] = []
        for i in range(args.asks):
            started = time.perf_counter()
            response = client.post(
                f"/api/rag/services/default/{name}/ask",
                json={"question": QUESTIONS[i % len(QUESTIONS)]},
            )
            portal_ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            body = response.json()
            service_ms.append(float(body["latency_ms"]))
            tokens.append(int(body["usage"]["completion_tokens"]))
        print(f"Ask path, {args.asks} questions (SmolLM2-135M, answers <= 200 tokens):")
        print(
            f"  through the portal p50 / p95: {percentile(portal_ms, 0.5):.0f} / "
            f"{percentile(portal_ms, 0.95):.0f} ms"
        )
        print(
            f"  the service's own /query p50 / p95: {percentile(service_ms, 0.5):.0f} / "
            f"{percentile(service_ms, 0.95):.0f} ms"
        )
        print(f"  answer tokens mean / max: {statistics.mean(tokens):.0f} / {max(tokens)}")
        report = client.get(f"/api/sla/services/component/default/{name}", params={"window": "1h"})
        if report.status_code == 200:
            print(f"  requests in the SLA report: {report.json()['slo']['requests']}")
        record = client.get(f"/api/rag/services/default/{name}/deployment").json()
        pids = [o["pid"] for o in record["objects"] if o.get("pid")]
        deleted = client.delete(f"/api/rag/services/default/{name}")
        assert deleted.status_code == 200, deleted.text
        left = [pid for pid in pids if _alive(pid)]
        print(f"after delete: {len(left)} of {len(pids)} processes left")
    finally:
        client.close()
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return state != "Z"


if __name__ == "__main__":
    raise SystemExit(main())
