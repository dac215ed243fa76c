"""Catalog benchmark: bulk import, then read latencies over real HTTP, and the SQL plans.

    .venv/bin/python benchmarks/catalog.py --entities 10000 --db postgresql
    .venv/bin/python benchmarks/catalog.py --entities 1000000 --db postgresql --keep
    .venv/bin/python benchmarks/catalog.py --entities 1000000 --db postgresql --reuse bench_x
    .venv/bin/python benchmarks/catalog.py --entities 100000 --db sqlite

Generates realistic entities (70 % Components, 60 % of them ``spec.type: service`` and
80 % ``spec.lifecycle: production``; Resources, Systems, Groups; owners, systems, tags,
annotations, dependsOn) as catalog-info YAML files (one location per file), imports them
through ``LocationRegistry.add_location`` (YAML parse, validation, bulk write) in
``--importers`` processes, starts the portal in its own process and measures p50/p95
over real HTTP:

- by-query first page for filters that match much of the catalog (the common case), each
  answer's ``totalItems`` checked against the generated entities; the first of them also
  from ``--concurrency`` clients at once; a later page (cursor); full text, alone and
  beside a common filter; by-name; an annotation filter; facets;
- the full listing ``GET /entities?filter=kind=component`` (time to the first byte, to the
  last, and how much the portal's peak memory grew), and the unfiltered listing;
- by-query while every location is refreshed (every entity changed) by two processes
  doing what catalog workers do.

Then it prints, for each query shape, the statements the portal runs and the database's
``EXPLAIN ANALYZE`` of them (``benchmarks/catalog_plans.py``). PostgreSQL runs in a fresh
schema of the test database, dropped afterwards unless ``--keep``; ``--reuse SCHEMA``
(or a SQLite data folder) measures a kept catalog again without importing it.
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
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import yaml
from sqlalchemy import Engine, func, select, text

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks import scratch  # noqa: E402
from benchmarks.catalog_plans import explain  # noqa: E402
from catalog.entity_reads import EntityReads  # noqa: E402
from catalog.location_registry import LocationRegistry  # noqa: E402
from catalog.locations import LocationPolicy  # noqa: E402
from catalog.tables import CatalogLocation  # noqa: E402
from portal_backend.auth.service import create_token  # noqa: E402
from portal_backend.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.settings import Settings  # noqa: E402
from workers.catalog import background_refresh  # noqa: E402

TAGS = [f"tag-{i}" for i in range(30)] + ["python", "go", "java", "rag", "llm", "gpu"]
TYPES = ["service"] * 6 + ["website"] * 2 + ["library", "rag-service"]
LIFECYCLES = ["production"] * 4 + ["experimental"]
WORDS = "search index ranking billing ledger storefront gateway vector model ingest".split()
# by-query filters that match much of the catalog: (filter, what share of it they match).
COMMON_FILTERS = [
    "kind=component,spec.type=service",  # the catalog page's first question (42 %)
    "kind=component,spec.lifecycle=production",  # 56 %
    "spec.lifecycle=production",  # no kind: every kind's range (56 %)
    "kind=component",  # 70 %
    # Three conditions: its total is counted from the matches (no running count holds
    # the combination), the slow part of this shape at 1M entities.
    "kind=component,spec.type=service,spec.lifecycle=production",  # 34 %
]


def generate(total: int, rng: random.Random) -> list[dict]:
    groups = max(10, total // 200)
    systems = max(5, total // 100)
    components = total * 7 // 10
    resources = max(0, total - groups - systems - components)
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
                    "lifecycle": rng.choice(LIFECYCLES),
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


def expected_totals(entities: list[dict]) -> dict[str, int]:
    """How many generated entities each of COMMON_FILTERS matches (counted here, in
    Python, so the portal's ``totalItems`` is checked against something independent)."""
    counts: Counter[str] = Counter()
    wanted = {text: [part.split("=") for part in text.split(",")] for text in COMMON_FILTERS}
    for entity in entities:
        spec = entity.get("spec") or {}
        fields = {
            "kind": entity["kind"].lower(),
            "spec.type": spec.get("type"),
            "spec.lifecycle": spec.get("lifecycle"),
        }
        for filter_text, conditions in wanted.items():
            if all(fields[key] == value for key, value in conditions):
                counts[filter_text] += 1
    return dict(counts)


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


def _import_files(database_url: str, root: str, files: list[str]) -> tuple[list[str], float, float]:
    """One importer process: registers its share of the location files. Answers the
    location ids, its own CPU seconds and those of the database backends it used
    (PostgreSQL on this machine; 0 on SQLite, which runs in the importer)."""
    factory = make_session_factory(make_engine(database_url))
    policy = LocationPolicy(file_roots=(Path(root),), max_bytes=64 * 1024 * 1024)
    ids = []
    backends: dict[int, float] = {}  # backend pid -> its CPU seconds when first seen
    cpu_start = time.process_time()
    for path in files:
        with session_scope(factory) as session:
            if session.get_bind().dialect.name == "postgresql":
                pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                backends.setdefault(pid, cpu_seconds(pid))
            added = LocationRegistry(session, policy=policy).add_location("file", path)
            ids.append(added["location"]["id"])
    backend_cpu = sum(cpu_seconds(pid) - first for pid, first in backends.items())
    return ids, time.process_time() - cpu_start, backend_cpu


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


def summary(name: str, samples: list[float], **extra: object) -> dict:
    return {
        "name": name,
        "n": len(samples),
        "p50": statistics.median(samples),
        "p95": percentile(samples, 0.95),
        **extra,
    }


def measure(name: str, count: int, call: Callable[[int], None]) -> dict:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return summary(name, samples)


def measure_concurrent(
    name: str, clients: list[httpx.Client], per_client: int, call: Callable[[httpx.Client], None]
) -> dict:
    """Every client sends ``per_client`` requests at once with the others (one thread each)."""
    samples: list[float] = []
    lock = threading.Lock()
    start_line = threading.Barrier(len(clients))

    def run(client: httpx.Client) -> None:
        start_line.wait()
        mine = []
        for _ in range(per_client):
            start = time.perf_counter()
            call(client)
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(name, samples)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_listing(
    name: str, client: httpx.Client, params: dict, runs: int, server_pid: int
) -> dict:
    """Streamed GET /entities: time to the first byte and to the last, size, and how much
    the portal's peak memory grew over all runs."""
    firsts, totals, sizes = [], [], []
    rss_before = peak_rss_mb(server_pid)
    for _ in range(runs):
        start = time.perf_counter()
        first = None
        size = 0
        with client.stream("GET", "/entities", params=params) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                if first is None:
                    first = time.perf_counter()
                size += len(chunk)
        totals.append((time.perf_counter() - start) * 1000)
        firsts.append(((first or time.perf_counter()) - start) * 1000)
        sizes.append(size)
    return summary(
        name,
        totals,
        first_p50=statistics.median(firsts),
        first_p95=percentile(firsts, 0.95),
        mb=sizes[-1] / 1e6,
        rss_growth=peak_rss_mb(server_pid) - rss_before,
    )


def start_server(settings: Settings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "RAGPORTAL_DATA_DIR": str(settings.data_dir),
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


def print_table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    print()
    print(title)
    print()
    print("| " + " | ".join(label for label, _ in columns) + " |")
    print("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(columns))) + " |")
    for row in rows:
        cells = []
        for _, key in columns:
            value = row.get(key, "")
            cells.append(f"{value:,.1f}" if isinstance(value, float) else str(value))
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--requests", type=int, default=200, help="requests per read figure")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once")
    parser.add_argument("--listings", type=int, default=20, help="runs of the full listing")
    parser.add_argument(
        "--unfiltered-listings", type=int, default=3, help="runs of the unfiltered listing"
    )
    parser.add_argument("--per-location", type=int, default=500, help="entities per YAML file")
    # Two processes: what `ragportal worker` runs by default (--concurrency 2, one per
    # core of the 2-core reference machine), each importing whole locations.
    parser.add_argument("--importers", type=int, default=2, help="parallel import processes")
    parser.add_argument("--skip-refresh", action="store_true", help="no reads-under-refresh")
    parser.add_argument("--skip-plans", action="store_true", help="no EXPLAIN ANALYZE output")
    parser.add_argument(
        "--skip-reads",
        action="store_true",
        help="no read latencies or listings (with --reuse: only the refresh and the plans)",
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
        help="RAGPORTAL_CATALOG_REFRESH_CONCURRENCY: refreshes at once",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the imported catalog (data folder, schema)"
    )
    parser.add_argument(
        "--reuse",
        help="the data folder of a catalog kept by --keep with the same --entities: measure "
        "it again without importing",
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
    workdir = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    schema = None
    values: dict = {
        "data_dir": workdir,
        "log_json": False,
        "log_level": "WARNING",
        "catalog_refresh_niceness": args.refresh_niceness,
        "catalog_refresh_concurrency": args.refresh_concurrency,
    }
    if args.db == "postgresql":
        if args.reuse:
            schema = (workdir / "schema").read_text().strip()
            sep = "&" if "?" in args.postgres_url else "?"
            values["database_url_override"] = (
                f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}"
            )
        else:
            schema, values["database_url_override"] = scratch.create_schema(args.postgres_url)
            (workdir / "schema").write_text(schema)
    settings = Settings(**values)
    server = None
    keep = args.keep or bool(args.reuse)
    try:
        upgrade_database(settings)
        print(f"generating {args.entities:,} entities ...", flush=True)
        entities = generate(args.entities, rng)
        totals = expected_totals(entities)
        factory = make_session_factory(make_engine(settings.database_url))
        imported = None
        if args.reuse:
            with session_scope(factory) as session:
                location_ids = list(session.scalars(select(CatalogLocation.id)))
                count = EntityReads(session).query_entities(limit=0)["totalItems"]
            # The portal registers its shipped templates when it starts: a few more.
            assert 0 <= count - args.entities < 10, f"{args.reuse} holds {count} entities"
            paths = sorted((workdir / "locations").glob("*.yaml"))
        else:
            paths = write_locations(entities, workdir / "locations", args.per_location, 1)
            print(f"importing {len(paths)} locations, {args.importers} importers ...", flush=True)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.importers, mp_context=context) as pool:
                # Every importer started before the clock does: catalog workers are
                # long-running, so their start-up (~1-2 s of Python imports each) is no
                # part of the import's throughput.
                list(pool.map(time.sleep, [1.0] * args.importers))
                load_import = os.getloadavg()[0]
                start = time.perf_counter()
                shares = [
                    [str(p) for p in paths[k :: args.importers]] for k in range(args.importers)
                ]
                futures = [
                    pool.submit(_import_files, settings.database_url, str(workdir), share)
                    for share in shares
                ]
                results = [f.result() for f in futures]
                import_s = time.perf_counter() - start
            location_ids = [i for ids, _, _ in results for i in ids]
            importer_cpu = sum(cpu for _, cpu, _ in results)
            backend_cpu = sum(cpu for _, _, cpu in results)
            imported = {
                "name": f"import via locations, {args.importers} processes (YAML, validation, "
                "bulk write)",
                "rate": args.entities / import_s,
                "seconds": import_s,
                "importer_us": importer_cpu * 1e6 / args.entities,
                "database_us": backend_cpu * 1e6 / args.entities,
                "load": f"{load_import:.1f} -> {os.getloadavg()[0]:.1f}",
            }
            print(f"import: {import_s:.1f} s = {imported['rate']:,.0f} entities/s", flush=True)
            assert len(location_ids) == len(paths)
        print()
        print(
            f"catalog benchmark: {args.entities:,} entities, {args.db}, {len(paths)} locations; "
            f"machine: {os.cpu_count()} CPUs"
        )
        if imported:
            print_table(
                "Import",
                [imported],
                [
                    ("measurement", "name"),
                    ("entities/s", "rate"),
                    ("s", "seconds"),
                    ("importer CPU us/entity", "importer_us"),
                    ("database CPU us/entity", "database_us"),
                    ("load", "load"),
                ],
            )
        if args.db == "postgresql":
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                for table in ("catalog_entities", "catalog_search", "catalog_relations"):
                    conn.execute(f'VACUUM ANALYZE "{schema}".{table}')

        port = 7900 + rng.randrange(1000)
        server = start_server(settings, port)
        # Clients authenticate as platform teams' tools do: a read-scope API token, which
        # the portal verifies (then caches) like any other, not the bootstrap token.
        with session_scope(factory) as session:
            token = create_token(
                session, name="catalog-benchmark", scope="read", subject="catalog-benchmark"
            ).token

        def new_client() -> httpx.Client:
            return httpx.Client(
                base_url=f"http://127.0.0.1:{port}/api/catalog",
                headers={"Authorization": f"Bearer {token}"},
                timeout=600,
            )

        client = new_client()
        components = [e["metadata"]["name"] for e in entities if e["kind"] == "Component"]

        def ok(response: httpx.Response) -> httpx.Response:
            response.raise_for_status()
            return response

        def first_page(filter_text: str) -> Callable[[int], None]:
            def call(_: int) -> None:
                page = ok(
                    client.get("/entities/by-query", params={"filter": filter_text, "limit": 20})
                ).json()
                assert page["totalItems"] == totals[filter_text], (filter_text, page["totalItems"])
                assert len(page["items"]) == 20

            return call

        query = {"filter": COMMON_FILTERS[0], "limit": "20"}
        names = components[:1]  # by-name's names (the plans use the first)
        if not args.skip_reads:
            reads: list[dict] = []
            load_reads = os.getloadavg()[0]
            cpu_before = cpu_seconds(server.pid)
            requests_sent = 0
            for _ in range(20):  # warm up connection pools and caches
                first_page(COMMON_FILTERS[0])(0)
            for filter_text in COMMON_FILTERS:
                share = 100 * totals[filter_text] / args.entities
                reads.append(
                    measure(
                        f"by-query first page, filter={filter_text} ({share:.0f} %), limit 20",
                        args.requests,
                        first_page(filter_text),
                    )
                )
                requests_sent += args.requests
            clients = [new_client() for _ in range(args.concurrency)]
            reads.append(
                measure_concurrent(
                    f"same ({COMMON_FILTERS[0]}), {args.concurrency} clients at once",
                    clients,
                    max(1, args.requests // 4),
                    lambda c: ok(c.get("/entities/by-query", params=query)),
                )
            )
            requests_sent += args.concurrency * max(1, args.requests // 4)
            cursors = []
            page = ok(client.get("/entities/by-query", params=query)).json()
            while len(cursors) < 50 and page["pageInfo"].get("nextCursor"):
                cursors.append(page["pageInfo"]["nextCursor"])
                page = ok(
                    client.get("/entities/by-query", params={"cursor": cursors[-1], "limit": "20"})
                ).json()
            reads.append(
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
            # A few digits (svc-0 .. svc-999) match every name and title holding them: at 1M
            # entities from ~1,100 (3 digits) to ~111,000 (1 digit) components. A whole
            # component number is what someone looking for one service types.
            broad = [f"svc-{rng.randrange(1000)}" for _ in range(args.requests)]
            narrow = [rng.choice(components).split("-", 1)[1] for _ in range(args.requests)]
            # The catalog page's search box beside its kind and type pickers: the term and
            # a filter matching 42 % of the catalog.
            service = {"filter": "kind=component,spec.type=service"}
            for label, terms, extra in (
                ("full text, svc-<n < 1000> (name/title/description)", broad, {}),
                ("full text, svc-<n < 1000>, kind=component,spec.type=service", broad, service),
                ("full text, svc-<a component's number>", narrow, {}),
            ):
                reads.append(
                    measure(
                        label,
                        args.requests,
                        lambda i, terms=terms, extra=extra: ok(
                            client.get(
                                "/entities/by-query",
                                params={"fullTextFilterTerm": terms[i], "limit": "20", **extra},
                            )
                        ),
                    )
                )
            names = [rng.choice(components) for _ in range(args.requests)]
            reads.append(
                measure(
                    "by-name",
                    args.requests,
                    lambda i: ok(client.get(f"/entities/by-name/component/default/{names[i]}")),
                )
            )
            # What Backstage's Kubernetes plugin asks: the entity carrying an annotation value.
            annotation = "metadata.annotations.backstage.io/kubernetes-id="
            reads.append(
                measure(
                    "annotation filter (backstage.io/kubernetes-id=<name>)",
                    args.requests,
                    lambda i: ok(
                        client.get(
                            "/entities/by-query",
                            params={"filter": annotation + names[i], "limit": "20"},
                        )
                    ),
                )
            )
            reads.append(
                measure(
                    "facets spec.type + metadata.tags",
                    args.requests,
                    lambda i: ok(
                        client.get(
                            "/entity-facets", params={"facet": ["spec.type", "metadata.tags"]}
                        )
                    ),
                )
            )
            requests_sent += 6 * args.requests
            cpu_per_request = (cpu_seconds(server.pid) - cpu_before) * 1000 / requests_sent
            load_reads = f"{load_reads:.1f} -> {os.getloadavg()[0]:.1f}"

            print_table(
                f"Reads over HTTP (1-minute load average {load_reads}; the portal used "
                f"{cpu_per_request:.2f} ms of CPU per request)",
                reads,
                [("measurement", "name"), ("n", "n"), ("p50 ms", "p50"), ("p95 ms", "p95")],
            )
            listings = [
                measure_listing(label, client, params, runs, server.pid)
                for label, params, runs in (
                    (
                        f"GET /entities?filter=kind=component "
                        f"({totals['kind=component']:,} entities)",
                        {"filter": "kind=component"},
                        args.listings,
                    ),
                    (
                        f"GET /entities, unfiltered ({args.entities:,} entities)",
                        {},
                        args.unfiltered_listings,
                    ),
                )
                if runs > 0  # --listings 0 / --unfiltered-listings 0: not measured
            ]

            print_table(
                "Streamed listings (first byte / whole answer; portal peak memory growth over "
                "all runs)",
                listings,
                [
                    ("listing", "name"),
                    ("n", "n"),
                    ("MB", "mb"),
                    ("first byte p50 ms", "first_p50"),
                    ("first byte p95 ms", "first_p95"),
                    ("whole p50 ms", "p50"),
                    ("whole p95 ms", "p95"),
                    ("peak RSS growth MB", "rss_growth"),
                ],
            )
        refresh = None
        if not args.skip_refresh:
            refresh = measure_refresh(
                args, settings, entities, workdir, location_ids, client, query
            )

        if refresh:
            print_table(
                "Reads during a full refresh",
                [refresh],
                [
                    ("measurement", "name"),
                    ("n", "n"),
                    ("p50 ms", "p50"),
                    ("p95 ms", "p95"),
                    ("idle p95 ms", "idle_p95"),
                    ("ratio", "ratio"),
                    ("refresh entities/s", "rate"),
                    ("load", "load"),
                ],
            )
        print(
            f"\n1-minute load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
        )
        if not args.skip_plans:
            print_plans(factory, names[0])
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if keep:
            print(f"kept: --reuse {workdir}" + (f" (schema {schema})" if schema else ""))
        else:
            if schema:
                scratch.drop_schema(args.postgres_url, schema)
            shutil.rmtree(workdir, ignore_errors=True)


def measure_refresh(
    args: argparse.Namespace,
    settings: Settings,
    entities: list[dict],
    workdir: Path,
    location_ids: list[str],
    client: httpx.Client,
    query: dict,
) -> dict:
    """by-query p95 while two processes refresh every location (every entity changed),
    against the idle p95 measured right before. The refresh is stopped once the reads
    are measured (at 1M entities it runs for many minutes); its rate is what it did by
    then (locations whose refresh committed, read from the database)."""

    def call(_: int) -> None:
        client.get("/entities/by-query", params=query).raise_for_status()

    idle = measure("idle", args.requests, call)
    # A revision no earlier run wrote (a kept catalog is refreshed again by --reuse).
    revision = int(time.time())
    write_locations(entities, workdir / "locations", args.per_location, revision=revision)
    load_start = os.getloadavg()[0]
    context = multiprocessing.get_context("spawn")
    began = datetime.now(UTC)
    refreshers = [
        context.Process(target=_refresh_locations, args=(settings, location_ids[k::2]))
        for k in range(2)
    ]
    for refresher in refreshers:
        refresher.start()
    engine = make_engine(settings.database_url)
    # Measured once the refresh is in full flight: both started (Python imports, slow on
    # a loaded machine) and a first location committed.
    deadline = time.monotonic() + 300
    while refreshed_since(engine, began) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = measure("busy", args.requests, call)
    if not all(refresher.is_alive() for refresher in refreshers):
        print("warning: the refresh finished before the measurement did; raise --entities")
    for refresher in refreshers:
        refresher.terminate()  # its open transaction rolls back; committed ones stay
        refresher.join()
    seconds = (datetime.now(UTC) - began).total_seconds()
    done = refreshed_since(engine, began)
    engine.dispose()
    return {
        "name": f"by-query first page ({query['filter']}) while every location refreshes",
        "n": busy["n"],
        "p50": busy["p50"],
        "p95": busy["p95"],
        "idle_p95": idle["p95"],
        "ratio": f"{busy['p95'] / idle['p95']:.2f}x",
        "rate": done * args.per_location / seconds,
        "load": f"{load_start:.1f} -> {os.getloadavg()[0]:.1f}",
    }


def refreshed_since(engine: Engine, began: datetime) -> int:
    """How many locations' refreshes committed since ``began``."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(CatalogLocation.refreshed_at >= began)
        ).scalar_one()


def print_plans(factory, name: str) -> None:  # type: ignore[no-untyped-def]
    """Each query shape's statements and how the database ran them."""
    shapes: list[tuple[str, Callable]] = [
        (
            f"by-query first page, filter={text}",
            lambda s, t=text: EntityReads(s).query_entities(filters=[t], limit=20),
        )
        for text in COMMON_FILTERS
    ]
    shapes += [
        (
            "full text svc-123",
            lambda s: EntityReads(s).query_entities(term="svc-123", limit=20),
        ),
        ("by-name", lambda s: EntityReads(s).get_by_name("component", "default", name)),
        (
            "annotation filter",
            lambda s: EntityReads(s).query_entities(
                filters=[f"metadata.annotations.backstage.io/kubernetes-id={name}"], limit=20
            ),
        ),
        (
            "facets spec.type + metadata.tags",
            lambda s: EntityReads(s).facets(["spec.type", "metadata.tags"]),
        ),
        (
            "listing kind=component, first batch",
            lambda s: next(EntityReads(s).iter_json(filters=["kind=component"]), None),
        ),
    ]
    for title, call in shapes:
        print(f"\n## plan: {title}\n")
        for line in explain(factory, call):
            print(line)


if __name__ == "__main__":
    main()
