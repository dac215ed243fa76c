"""Provisioning benchmark: N services at once, 2 Celery worker processes, emulated cluster.

    .venv/bin/python benchmarks/provision.py --services 50 --workers 2

Renders the real rag-service template N times (cookiecutter), starts the Kubernetes API
emulator (tests/k8s_emulator) on 127.0.0.1 with enough GPU nodes, starts ``ragportal
worker`` processes on Redis with a PostgreSQL schema of the test database, sends N
``provisioning.provision`` tasks at once and records, per service, the time from
submission until its row says Healthy (the emulator marks workloads ready
``--ready-delay`` seconds after they are applied, as controllers would). Then it tears all
N down through ``provisioning.teardown`` and counts what is left with the label.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cookiecutter.main import cookiecutter  # noqa: E402
from sqlalchemy import select  # noqa: E402

from benchmarks import harness, scratch  # noqa: E402
from portal_backend.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL  # noqa: E402
from portal_backend.provisioning.models import ProvisionedService  # noqa: E402
from portal_backend.provisioning.secrets import GLOBAL, SecretStore  # noqa: E402
from portal_backend.settings import Settings  # noqa: E402
from tests.k8s_emulator import running_cluster  # noqa: E402
from workers.celery_app import make_celery  # noqa: E402
from workers.provisioning import PROVISION, TEARDOWN  # noqa: E402

SKELETON = REPO_ROOT / "scaffolder_templates" / "rag-service" / "skeleton"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def worker_env(settings: Settings, kubeconfig: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGPORTAL_")}
    env.update(
        DATABASE_URL=settings.database_url_override or "",
        REDIS_URL=harness.REDIS_URL,
        RAGPORTAL_DATA_DIR=str(settings.data_dir),
        RAGPORTAL_CELERY_QUEUE=settings.celery_queue,
        RAGPORTAL_LOG_JSON="false",
        RAGPORTAL_LOG_LEVEL="WARNING",
        RAGPORTAL_CLUSTERS=json.dumps({"bench": {"kubeconfig": str(kubeconfig)}}),
        RAGPORTAL_DEFAULT_CLUSTER="bench",
        RAGPORTAL_PROVISION_POLL_INTERVAL_S="0.1",
        RAGPORTAL_PROVISIONING_SECRET_KEY=settings.provisioning_secret_key or "",
    )
    return env


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1 slot each)")
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=0.5,
        help="seconds the emulator takes to mark a workload ready",
    )
    args = parser.parse_args()

    schema, database_url = scratch.create_schema(harness.POSTGRES_URL)
    workdir = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    processes: list[subprocess.Popen] = []
    try:
        settings = Settings(
            data_dir=workdir / "data",
            database_url_override=database_url,
            redis_url=harness.REDIS_URL,
            celery_queue=f"provision-bench-{uuid.uuid4().hex[:8]}",
            provisioning_secret_key="benchmark-key",
            log_json=False,
        )
        upgrade_database(settings)
        factory = make_session_factory(make_engine(settings.database_url))
        with session_scope(factory) as session:
            SecretStore(session, settings).set(GLOBAL, "hf-token", "hf_benchmark")

        names = [f"bench-{i:03d}" for i in range(args.services)]
        started = time.perf_counter()
        bundles = {}
        for name in names:
            out = cookiecutter(
                str(SKELETON),
                no_input=True,
                output_dir=str(workdir / "repos"),
                extra_context={"service_name": name},
            )
            bundles[name] = str(Path(out) / "deploy" / "k8s")
        render_s = time.perf_counter() - started

        with running_cluster(log_size=200) as cluster:
            cluster.ready_delay_s = args.ready_delay
            for i in range((args.services + 1) // 2 + 1):  # 2 GPUs per node, 1 per service
                cluster.add_node(f"gpu-{i}", gpus=2, labels={"nvidia.com/gpu.product": "NVIDIA-L4"})
            kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
            env = worker_env(settings, kubeconfig)
            processes = harness.start_workers(env, args.workers, workdir, beat=False)
            app = make_celery(settings, queue=settings.celery_queue)
            time.sleep(3)  # let the workers connect before the clock starts

            requests_before = cluster.request_count
            submitted = datetime.now(UTC)
            t0 = time.perf_counter()
            for name in names:
                app.send_task(
                    PROVISION,
                    args=[name, bundles[name], "prod", None, False, "L4"],
                    queue=settings.celery_queue,
                )

            def states() -> dict[str, tuple[str, datetime]]:
                with session_scope(factory) as session:
                    rows = session.scalars(select(ProvisionedService)).all()
                    return {r.service: (r.state, r.updated_at) for r in rows}

            wait_until(
                lambda: (
                    len([s for s, _ in states().values() if s != "Progressing"]) == args.services
                ),
                1800,
                "all services provisioned",
            )
            wall_s = time.perf_counter() - t0
            final = states()
            healthy = {n: v for n, v in final.items() if v[0] == "Healthy"}
            to_healthy = [
                (updated.astimezone(UTC) - submitted).total_seconds()
                for _, updated in healthy.values()
            ]
            provision_calls = cluster.request_count - requests_before
            objects = len(cluster.labelled(SERVICE_LABEL))

            before_teardown = cluster.request_count
            t1 = time.perf_counter()
            for name in names:
                app.send_task(TEARDOWN, args=[name], queue=settings.celery_queue)
            wait_until(lambda: not states(), 600, "all services torn down")
            teardown_s = time.perf_counter() - t1
            teardown_calls = cluster.request_count - before_teardown
            leftovers = len(cluster.labelled(SERVICE_LABEL))

        print(f"render: {args.services} repositories in {render_s:.1f}s (cookiecutter)")
        print()
        print("| measure | value |")
        print("| --- | --- |")
        print(f"| services provisioned concurrently | {args.services} |")
        print(f"| worker processes | {args.workers} |")
        print(f"| emulator ready delay per workload | {args.ready_delay:.1f} s |")
        print(f"| Healthy | {len(healthy)} / {args.services} |")
        print(
            f"| objects applied (labelled) | {objects} ({objects // args.services} per service) |"
        )
        print(f"| time to Healthy p50 | {statistics.median(to_healthy):.1f} s |")
        print(f"| time to Healthy p95 | {percentile(to_healthy, 0.95):.1f} s |")
        print(f"| all {args.services} Healthy after | {wall_s:.1f} s |")
        busy = wall_s * args.workers / args.services
        print(f"| worker time per service (apply + readiness waits) | {busy:.1f} s |")
        print(f"| throughput | {args.services / wall_s * 60:.1f} services/min |")
        print(f"| API calls per service (provision) | {provision_calls / args.services:.1f} |")
        print(f"| API calls per service (teardown) | {teardown_calls / args.services:.1f} |")
        print(f"| teardown of all {args.services} | {teardown_s:.1f} s |")
        print(f"| objects left with the label after teardown | {leftovers} |")
        if len(healthy) != args.services or leftovers:
            raise SystemExit(
                "benchmark failed: not every service became Healthy or some objects remain"
            )
    finally:
        harness.stop_workers(processes)
        scratch.drop_schema(harness.POSTGRES_URL, schema)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
