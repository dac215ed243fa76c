"""Fleet upgrade benchmark: N rag-service repositories generated at template 1.0.0, one
request upgrades them all to the current version.

    .venv/bin/python benchmarks/template_upgrade.py --services 100 --workers 2

Starts the portal (uvicorn, in-process) on a fresh PostgreSQL schema of the test database
and ``ragportal worker`` processes (Celery on Redis). Setup, not timed: N repositories
as the portal of before generated them (the real rag-service template at its first
recorded version, rendered with the service's answers, committed to a local bare
repository, registered in the catalog with the 1.0.0 annotation), each with a team
commit (a README line the template leaves alone; every 10th also edits a line the
template changes, so it conflicts). Timed: ``POST /templates/default/template/
rag-service/upgrades`` until every task ended. Prints the wall time, each upgrade
task's step time (the worker's own work: two renders, the merge, the push) p50/p95,
submit-to-completed p50/p95, and the summary (merged clean / conflicts / failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import select  # noqa: E402

from benchmarks import harness, scratch  # noqa: E402
from catalog.service import CatalogService  # noqa: E402
from portal_backend.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.git_hosts import local_repos  # noqa: E402
from portal_backend.scaffolder import rendering, version_store  # noqa: E402
from portal_backend.scaffolder.actions.catalog import register_published  # noqa: E402
from portal_backend.scaffolder.tables import ScaffolderStep, ScaffolderTask  # noqa: E402
from portal_backend.scaffolder.upgrade_tables import TemplateUpgrade  # noqa: E402

REF = "template:default/rag-service"
API = "/api/scaffolder/v2"
GIT = {
    "GIT_AUTHOR_NAME": "Team",
    "GIT_AUTHOR_EMAIL": "team@example.com",
    "GIT_COMMITTER_NAME": "Team",
    "GIT_COMMITTER_EMAIL": "team@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": os.environ["PATH"],
}


def git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT, check=True, capture_output=True)


def generate_old(settings, factory, name: str, scratch: Path, conflict: bool) -> None:  # type: ignore[no-untyped-def]
    """A repository generated at 1.0.0 (answers file and annotation as 1.0.0 would be
    after adoption), plus the team's commit."""
    answers = {"name": name, "owner": "group:default/bench-team", "gpu_class": "L4"}
    old = version_store.materialize(settings, factory, REF, "1.0.0")
    render = rendering.render(
        settings, factory, old, answers, user_ref="user:default/bench", workspace=scratch / name
    )
    readme = render / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    lines.insert(1, "\nOn call: #bench-team.\n")
    if conflict:  # a line 1.1.0 rewrites
        lines = [ln.replace("docs/ ingested, API", "our docs ingested, API") for ln in lines]
    (render / ".rag-portal").mkdir()
    (render / ".rag-portal" / "answers.yml").write_text(
        f"template: {REF}\nversion: 1.0.0\nanswers:\n  name: {name}\n"
        "  owner: group:default/bench-team\n  gpu_class: L4\n"
    )
    git("init", "--quiet", "-b", "main", str(render))
    git("add", "--all", ".", cwd=render)
    git("commit", "--quiet", "-m", "Initial commit", cwd=render)
    readme.write_text("".join(lines))
    git("commit", "--quiet", "-am", "team edit", cwd=render)
    bare = local_repos.repo_path(settings, "bench-team", name)
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("clone", "--quiet", "--bare", str(render), str(bare))
    url = local_repos.contents_url(bare, "main")
    register_published(f"{url}/catalog-info.yaml", url, settings, factory)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="per worker process")
    args = parser.parse_args()

    schema, database_url = scratch.create_schema(harness.POSTGRES_URL)
    root = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    env = harness.portal_env(
        root / "data",
        database_url,
        "bench-upgrade",
        templates_dir=str(REPO_ROOT / "scaffolder_templates"),
        runtime_enabled="false",
    )
    settings = harness.settings_from(env)
    upgrade_database(settings)
    portal = harness.serve(settings)  # registers (records) the templates
    factory = make_session_factory(make_engine(settings.database_url))
    workers: list[subprocess.Popen] = []
    try:
        with session_scope(factory) as session:
            CatalogService(session).upsert_entities(
                [
                    {
                        "apiVersion": "backstage.io/v1alpha1",
                        "kind": "Group",
                        "metadata": {"name": "bench-team"},
                        "spec": {"type": "team", "children": []},
                    }
                ],
                location_key="bench:groups",
            )
        started = time.monotonic()
        for i in range(args.services):
            generate_old(settings, factory, f"svc-{i:03d}", root / "render", conflict=i % 10 == 0)
        print(f"setup: {args.services} repositories at 1.0.0 in {time.monotonic() - started:.0f} s")
        workers = harness.start_workers(
            env, args.workers, root / "logs", concurrency=args.concurrency
        )
        time.sleep(5)  # workers up before the clock

        with portal.client() as client:
            clock = time.monotonic()
            answer = client.post(f"{API}/templates/default/template/rag-service/upgrades", json={})
            assert answer.status_code == 202, answer.text
            body = answer.json()
            submitted = time.monotonic() - clock
            while True:
                summary = client.get(f"{API}/fleet-upgrades/{body['id']}").json()
                if summary["done"]:
                    break
                time.sleep(0.5)
            wall = time.monotonic() - clock
        with session_scope(factory) as session:
            rows = session.execute(
                select(ScaffolderTask.created_at, ScaffolderTask.completed_at,
                       ScaffolderStep.started_at, ScaffolderStep.finished_at)
                .join(ScaffolderStep, ScaffolderStep.task_id == ScaffolderTask.id)
                .join(TemplateUpgrade, TemplateUpgrade.task_id == ScaffolderTask.id)
                .where(TemplateUpgrade.fleet_id == body["id"])
            ).all()  # fmt: skip
        step = [(f - s).total_seconds() for _c, _d, s, f in rows if s and f]
        end_to_end = [(d - c).total_seconds() for c, d, _s, _f in rows if c and d]
        print(f"services: {args.services}; workers: {args.workers} x {args.concurrency}")
        print(f"fleet request (plans and submits every upgrade): {submitted:.1f} s")
        print(
            f"wall time, request to last task ended: {wall:.1f} s "
            f"({args.services / wall * 60:.0f} services/min)"
        )
        print(
            f"upgrade step per service: p50 {statistics.median(step):.2f} s, "
            f"p95 {pct(step, 0.95):.2f} s"
        )
        print(
            f"submit to completed per service: p50 {statistics.median(end_to_end):.1f} s, "
            f"p95 {pct(end_to_end, 0.95):.1f} s"
        )
        print(f"summary: {summary['counts']}; refused: {len(body['refused'])}")
    finally:
        harness.stop_workers(workers)
        portal.stop()
        scratch.drop_schema(harness.POSTGRES_URL, schema)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
