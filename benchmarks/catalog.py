"""Catalog benchmark: bulk import, then read latencies over real HTTP.

    .venv/bin/python benchmarks/catalog.py --entities 100000 --db postgresql
    .venv/bin/python benchmarks/catalog.py --entities 20000 --db sqlite

Generates realistic entities (Components with owner/system/tags/annotations/dependsOn,
Resources, Systems, Groups) as catalog-info YAML files (one location per file), imports
them through ``CatalogService.add_location`` (YAML parse, validation, bulk write), starts
the portal in its own process and measures p50/p95 over real HTTP. PostgreSQL runs in a
fresh schema of the test database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import psycopg
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from catalog.locations import LocationPolicy  # noqa: E402
from catalog.service import CatalogService  # noqa: E402
from portal_backend.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.settings import Settings  # noqa: E402
from workers.catalog import background_refresh  # noqa: E402

TOKEN = "bench-bootstrap-token"
TAGS = [f"tag-{i}" for i in range(30)] + ["python", "go", "java", "rag", "llm", "gpu"]
TYPES = ["service"] * 5 + ["website"] * 2 + ["library"] * 2 + ["rag-service"]
WORDS = "search index ranking billing ledger storefront gateway vector model ingest".split()


def generate(total: int, rng: random.Random) -> list[dict]:
    groups = max(10, total // 200)
    systems = max(5, total // 100)
    resources = total // 5
    components = total - groups - systems - resources
    entities: list[dict] = []
    for i in range(groups):
        entities.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": f"team-{i}", "title": f"Team {i}"},
                "spec": {"type": "team", "children": []},
            }
        )
    for i in range(systems):
        entities.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "System",
                "metadata": {"name": f"system-{i}", "description": f"{rng.choice(WORDS)} system"},
                "spec": {"owner": f"team-{rng.randrange(groups)}"},
            }
        )
    for i in range(resources):
        entities.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Resource",
                "metadata": {"name": f"db-{i}", "tags": ["postgres"]},
                "spec": {
                    "type": rng.choice(["database", "bucket", "vector-collection"]),
                    "owner": f"team-{rng.randrange(groups)}",
                    "system": f"system-{rng.randrange(systems)}",
                },
            }
        )
    for i in range(components):
        name = f"{rng.choice(WORDS)}-svc-{i}"
        entities.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {
                    "name": name,
                    "title": name.replace("-", " ").title(),
                    "description": f"The {rng.choice(WORDS)} {rng.choice(WORDS)} component",
                    "tags": rng.sample(TAGS, rng.randint(1, 3)),
                    "annotations": {
                        "backstage.io/kubernetes-id": name,
                        "rag-portal.io/service": name,
                        "github.com/project-slug": f"acme/{name}",
                    },
                    "labels": {"tier": rng.choice(["gold", "silver", "bronze"])},
                },
                "spec": {
                    "type": rng.choice(TYPES),
                    "lifecycle": rng.choice(["production", "experimental"]),
                    "owner": f"team-{rng.randrange(groups)}",
                    "system": f"system-{rng.randrange(systems)}",
                    "dependsOn": [
                        f"resource:default/db-{rng.randrange(max(resources, 1))}"
                        for _ in range(rng.randint(1, 2))
                    ],
                },
            }
        )
    rng.shuffle(entities)
    return entities


def write_locations(
    entities: list[dict], folder: Path, per_location: int, revision: int
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(0, len(entities), per_location):
        chunk = entities[index : index + per_location]
        for entity in chunk:
            entity["metadata"].setdefault("annotations", {})["bench/revision"] = str(revision)
        path = folder / f"location-{index // per_location:05d}.yaml"
        path.write_text(yaml.dump_all(chunk, Dumper=yaml.CSafeDumper, sort_keys=False))
        paths.append(path)
    return paths


def _import_files(database_url: str, root: str, files: list[str]) -> list[str]:
    """One importer process: registers its share of the location files."""
    factory = make_session_factory(make_engine(database_url))
    policy = LocationPolicy(file_roots=(Path(root),), max_bytes=64 * 1024 * 1024)
    ids = []
    for path in files:
        with session_scope(factory) as session:
            added = CatalogService(session, policy=policy).add_location("file", path)
            ids.append(added["location"]["id"])
    return ids


def _refresh_locations(settings: Settings, location_ids: list[str]) -> int:
    """One refresher process doing what a catalog worker does for each due location
    (workers.catalog.background_refresh: claimed, at the refresh's lower CPU priority)."""
    for location_id in location_ids:
        # "deferred": the other refresher holds the only slot (catalog_refresh_concurrency);
        # the worker's task is retried 2-6 s later, this loop polls sooner (an upper bound
        # on the refresh rate).
        while (outcome := background_refresh(settings, location_id)).state == "deferred":
            time.sleep(0.02)
        assert outcome.state == "refreshed", (location_id, outcome.state, outcome.error)
    return len(location_ids)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(name: str, count: int, call: Callable[[int], None]) -> dict:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "name": name,
        "n": count,
        "p50": statistics.median(samples),
        "p95": percentile(samples, 0.95),
    }


def start_server(settings: Settings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "RAGPORTAL_DATA_DIR": str(settings.data_dir),
        "RAGPORTAL_BOOTSTRAP_TOKEN": TOKEN,
        "RAGPORTAL_LOG_LEVEL": "WARNING",
        "RAGPORTAL_ALLOWED_FILE_ROOTS": f'["{settings.data_dir}"]',
    }
    env.pop("DATABASE_URL", None)
    if settings.database_url_override:
        env["DATABASE_URL"] = settings.database_url_override
    code = (
        "import uvicorn; from portal_backend.app import create_app; "
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_config=None, "
        "access_log=False)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("portal did not start")


def report(
    args: argparse.Namespace,
    paths: list[Path],
    rate: float,
    import_s: float,
    results: list[dict],
    refresh: tuple[int, float, float] | None,
    load_before: float,
    stream_bytes: int,
) -> None:
    print()
    print(f"catalog benchmark: {args.entities:,} entities, {args.db}, {len(paths)} locations")
    print()
    print("| measurement | n | p50 ms | p95 ms |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| import via locations, {args.importers} processes (YAML, validation, bulk "
        f"write) | {args.entities:,} | {rate:,.0f} entities/s | ({import_s:.1f} s total) |"
    )
    for r in results:
        print(f"| {r['name']} | {r['n']} | {r['p50']:.1f} | {r['p95']:.1f} |")
    if refresh is not None:
        count, refresh_rate, refresh_s = refresh
        print(
            f"| refresh of all {len(paths)} locations, 2 processes as catalog workers "
            f"(niceness +{args.refresh_niceness}, {args.refresh_concurrency} at a time; "
            "every entity changed) "
            f"| {count} | {refresh_rate:,.0f} entities/s | ({refresh_s:.1f} s total) |"
        )
    print()
    print(
        f"machine: {os.cpu_count()} CPUs; 1-minute load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end (other work on the machine slows every figure)"
    )
    line = f"stream size: {stream_bytes / 1e6:.1f} MB"
    if refresh is not None:
        idle, busy = results[0]["p95"], results[-1]["p95"]
        line += f"; by-query p95 under refresh / idle = {busy / idle:.2f}x"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--requests", type=int, default=200, help="requests per read figure")
    parser.add_argument("--streams", type=int, default=3, help="full unfiltered GET /entities")
    parser.add_argument("--per-location", type=int, default=500, help="entities per YAML file")
    # Two processes: what `ragportal worker` runs by default (--concurrency 2, one per
    # core of the 2-core reference machine), each importing whole locations.
    parser.add_argument("--importers", type=int, default=2, help="parallel import processes")
    parser.add_argument(
        "--skip-refresh", action="store_true", help="leave out the reads-under-refresh figure"
    )
    parser.add_argument(
        "--refresh-niceness",
        type=int,
        default=Settings.model_fields["catalog_refresh_niceness"].default,
        help="RAGPORTAL_CATALOG_REFRESH_NICENESS of the refreshing workers (0 = full priority)",
    )
    parser.add_argument(
        "--refresh-concurrency",
        type=int,
        default=Settings.model_fields["catalog_refresh_concurrency"].default,
        help="RAGPORTAL_CATALOG_REFRESH_CONCURRENCY: refreshes at once (the refreshers "
        "take turns beyond it)",
    )
    parser.add_argument(
        "--keep-schema",
        action="store_true",
        help="keep the PostgreSQL schema afterwards (for EXPLAIN); its name is printed",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "RAGPORTAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rng = random.Random(42)
    workdir = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    schema = None
    values: dict = {
        "data_dir": workdir,
        "log_json": False,
        "log_level": "WARNING",
        "catalog_refresh_niceness": args.refresh_niceness,
        "catalog_refresh_concurrency": args.refresh_concurrency,
    }
    if args.db == "postgresql":
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in args.postgres_url else "?"
        values["database_url_override"] = (
            f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}"
        )
    settings = Settings(**values)
    server = None
    try:
        upgrade_database(settings)
        print(f"generating {args.entities} entities ...", flush=True)
        entities = generate(args.entities, rng)
        paths = write_locations(entities, workdir / "locations", args.per_location, revision=1)
        print(f"importing {len(paths)} locations with {args.importers} importers ...", flush=True)
        pool = ProcessPoolExecutor(args.importers, mp_context=multiprocessing.get_context("spawn"))
        # Every importer process started before the clock does: catalog workers are
        # long-running, so their start-up (~1-2 s of Python imports each) is no part of
        # the import's throughput. (A busy task each makes the pool start them all.)
        list(pool.map(time.sleep, [1.0] * args.importers))
        start = time.perf_counter()
        shares = [[str(p) for p in paths[k :: args.importers]] for k in range(args.importers)]
        futures = [
            pool.submit(_import_files, settings.database_url, str(workdir), share)
            for share in shares
        ]
        location_ids = [i for f in futures for i in f.result()]
        import_s = time.perf_counter() - start
        rate = args.entities / import_s
        print(f"import: {args.entities} entities in {import_s:.1f}s = {rate:,.0f} entities/s")
        assert len(location_ids) == len(paths)
        if args.db == "postgresql":
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                conn.execute(f'VACUUM ANALYZE "{schema}".catalog_entities')
                conn.execute(f'VACUUM ANALYZE "{schema}".catalog_search')
                conn.execute(f'VACUUM ANALYZE "{schema}".catalog_relations')

        port = 7900 + rng.randrange(1000)
        server = start_server(settings, port)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/catalog",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        components = [e["metadata"]["name"] for e in entities if e["kind"] == "Component"]
        query = {"filter": "kind=component,spec.type=service", "limit": "20"}

        def ok(response: httpx.Response) -> httpx.Response:
            response.raise_for_status()
            return response

        results = []
        # Warm up connection pools and caches.
        for _ in range(20):
            ok(client.get("/entities/by-query", params=query))
        results.append(
            measure(
                "by-query first page (kind=component,spec.type=service)",
                args.requests,
                lambda i: ok(client.get("/entities/by-query", params=query)),
            )
        )
        cursors = []
        page = ok(client.get("/entities/by-query", params=query)).json()
        while len(cursors) < 50 and page["pageInfo"].get("nextCursor"):
            cursors.append(page["pageInfo"]["nextCursor"])
            page = ok(
                client.get("/entities/by-query", params={"cursor": cursors[-1], "limit": "20"})
            ).json()
        results.append(
            measure(
                "by-query later page (cursor)",
                args.requests,
                lambda i: ok(
                    client.get(
                        "/entities/by-query",
                        params={"cursor": cursors[i % len(cursors)], "limit": "20"},
                    )
                ),
            )
        )
        results.append(
            measure(
                "full-text search (fullTextFilterTerm)",
                args.requests,
                lambda i: ok(
                    client.get(
                        "/entities/by-query",
                        params={"fullTextFilterTerm": f"svc-{rng.randrange(1000)}", "limit": "20"},
                    )
                ),
            )
        )
        results.append(
            measure(
                "by-name",
                args.requests,
                lambda i: ok(
                    client.get(f"/entities/by-name/component/default/{rng.choice(components)}")
                ),
            )
        )
        # What Backstage's Kubernetes plugin asks: the entity carrying an annotation value
        # (annotations live in metadata_maps: GIN on PostgreSQL, JSON scan on SQLite).
        results.append(
            measure(
                "annotation filter (backstage.io/kubernetes-id=<name>)",
                args.requests,
                lambda i: ok(
                    client.get(
                        "/entities/by-query",
                        params={
                            "filter": "metadata.annotations.backstage.io/kubernetes-id="
                            + rng.choice(components),
                            "limit": "20",
                        },
                    )
                ),
            )
        )
        results.append(
            measure(
                "facets spec.type + metadata.tags",
                args.requests,
                lambda i: ok(
                    client.get("/entity-facets", params={"facet": ["spec.type", "metadata.tags"]})
                ),
            )
        )
        stream_bytes = 0

        def stream(_: int) -> None:
            nonlocal stream_bytes
            with client.stream("GET", "/entities") as response:
                response.raise_for_status()
                stream_bytes = sum(len(chunk) for chunk in response.iter_bytes())

        results.append(measure("streamed unfiltered GET /entities", args.streams, stream))

        if args.skip_refresh:
            pool.shutdown()
            report(args, paths, rate, import_s, results, None, load_before, stream_bytes)
            return
        # Every location changes (new revision on every entity) and two refresher
        # processes (as catalog workers would) re-read all of them while by-query is
        # measured: reads must not queue behind those writes.
        write_locations(entities, workdir / "locations", args.per_location, revision=2)
        refresh_start = time.perf_counter()
        refreshers = [
            pool.submit(_refresh_locations, settings, location_ids[k::2]) for k in range(2)
        ]
        time.sleep(1.0)
        results.append(
            measure(
                "by-query first page while every location refreshes",
                args.requests,
                lambda i: ok(client.get("/entities/by-query", params=query)),
            )
        )
        busy_done = sum(1 for f in refreshers if f.done())
        refreshed = [sum(f.result() for f in refreshers)]
        refresh_s = time.perf_counter() - refresh_start
        pool.shutdown()
        if busy_done:
            print("warning: refresh finished before the measurement did; raise --entities")

        refresh_rate = (refreshed[0], args.entities / refresh_s, refresh_s)
        report(args, paths, rate, import_s, results, refresh_rate, load_before, stream_bytes)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if schema and args.keep_schema:
            print(f"kept schema {schema}")
        elif schema:
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
