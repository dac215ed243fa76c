"""Scaffolder benchmark: N tasks of a small template submitted at once, 2 worker processes.

    .venv/bin/python benchmarks/scaffolder.py --tasks 100 --workers 2 --database postgresql

Starts the portal (uvicorn, in-process) and ``ragportal worker`` processes on Redis with a
fresh PostgreSQL schema of the test database (or a SQLite file), measures a few tasks
one at a time on the idle system, then submits N tasks of the test template
``tests/fixtures/templates/demo-service`` (render with cookiecutter, fs steps, publish to
a local bare git repository, register in the catalog) concurrently over HTTP and waits
for all of them. Prints tasks/minute, submit-to-completed p50/p95, per-task service time,
and checks that every task completed once with one repository, one commit and one entity.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import select  # noqa: E402

from benchmarks import harness, scratch  # noqa: E402
from catalog.service import CatalogService  # noqa: E402
from portal_backend.db import make_engine, make_session_factory, upgrade_database  # noqa: E402
from portal_backend.git_hosts import local_repos  # noqa: E402
from portal_backend.scaffolder.tables import ScaffolderStep, ScaffolderTask  # noqa: E402

TEMPLATES = REPO_ROOT / "tests" / "fixtures" / "templates"  # demo-service (data only)
API = "/api/scaffolder/v2"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def submit(client: httpx.Client, name: str) -> str:
    response = client.post(
        f"{API}/tasks",
        json={
            "templateRef": "template:default/demo-service",
            "values": {"name": name, "owner": "group:default/bench"},
        },
    )
    response.raise_for_status()
    return response.json()["id"]


def wait_all(factory, ids: list[str], timeout: float) -> list[ScaffolderTask]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            rows = list(session.scalars(select(ScaffolderTask).where(ScaffolderTask.id.in_(ids))))
        if all(r.status in ("completed", "failed", "cancelled") for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {sum(r.status == 'completed' for r in rows)} completed")
        time.sleep(0.2)


def git_commits(repo: Path) -> int:
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "rev-list", "--count", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--idle-samples", type=int, default=5)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-scaffolder-"))
    schema = database_url = None
    if args.database == "postgresql":
        schema, database_url = scratch.create_schema(harness.POSTGRES_URL)
    env = harness.portal_env(
        data_dir, database_url, "bench-scaffolder", templates_dir=str(TEMPLATES)
    )
    settings = harness.settings_from(env)
    upgrade_database(settings)
    factory = make_session_factory(make_engine(settings.database_url))
    portal = harness.serve(settings)
    workers = harness.start_workers(env, args.workers, data_dir)
    try:
        client = portal.client()
        # Warm-up and idle latency: one task at a time.
        idle = []
        for i in range(args.idle_samples):
            [row] = wait_all(factory, [submit(client, f"idle-{i}")], 120)
            idle.append((aware(row.completed_at) - aware(row.created_at)).total_seconds())

        names = [f"bench-{i:03d}" for i in range(args.tasks)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            ids = list(pool.map(lambda n: submit(client, n), names))
        submitted = time.monotonic() - started
        rows = wait_all(factory, ids, 1800)
        with factory() as session:
            steps = list(
                session.scalars(select(ScaffolderStep).where(ScaffolderStep.task_id.in_(ids)))
            )
            refs = CatalogService(session).query_refs({"kind": "component"})
        completed = [r for r in rows if r.status == "completed"]
        latency = [(aware(r.completed_at) - aware(r.created_at)).total_seconds() for r in completed]
        first_start: dict[str, datetime] = {}
        for step in steps:
            if step.started_at:
                at = aware(step.started_at)
                first_start[step.task_id] = min(first_start.get(step.task_id, at), at)
        service = [(aware(r.completed_at) - first_start[r.id]).total_seconds() for r in completed]
        work = [
            (aware(s.finished_at) - aware(s.started_at)).total_seconds()
            for s in steps
            if s.started_at and s.finished_at
        ]
        per_task_work = sum(work) / max(1, len(completed))
        span = (
            max(aware(r.completed_at) for r in completed) - min(aware(r.created_at) for r in rows)
        ).total_seconds()
        repos = sorted((local_repos.repos_root(settings) / "demo").glob("bench-*.git"))
        single_commit = sum(1 for r in repos if git_commits(r) == 1)
        bench_refs = [r for r in refs if r.startswith("component:default/bench-")]
        rerun_steps = sum(1 for s in steps if s.attempts > 1)

        print(
            f"\nscaffolder benchmark: {args.tasks} tasks, {args.workers} worker processes, "
            f"Redis, {args.database}, template demo-service (7 steps)\n"
        )
        print("| measure | value |")
        print("| --- | --- |")
        print(f"| tasks completed / submitted | {len(completed)} / {args.tasks} |")
        print(f"| throughput | {len(completed) / span * 60:.0f} tasks/min |")
        print(f"| submit time for all {args.tasks} (HTTP, 16 clients) | {submitted:.1f} s |")
        print(
            f"| submit-to-completed p50 / p95 (burst of {args.tasks}) | "
            f"{percentile(latency, 0.5):.1f} s / {percentile(latency, 0.95):.1f} s |"
        )
        print(
            f"| first step start to completed p50 / p95 (burst) | "
            f"{percentile(service, 0.5):.1f} s / {percentile(service, 0.95):.1f} s |"
        )
        print(f"| step execution time per task (sum of steps, mean) | {per_task_work:.2f} s |")
        print(
            f"| submit-to-completed, one task on an idle system (median of "
            f"{len(idle)}) | {statistics.median(idle):.2f} s |"
        )
        print(f"| repositories / with exactly one commit | {len(repos)} / {single_commit} |")
        print(f"| catalog entities | {len(bench_refs)} |")
        print(
            f"| steps run more than once / lost tasks | {rerun_steps} / "
            f"{args.tasks - len(completed)} |"
        )
    finally:
        harness.stop_workers(workers)
        portal.stop()
        if schema:
            scratch.drop_schema(harness.POSTGRES_URL, schema)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
