"""Catalog refresh and ordering benchmark: the background refresh's cost, and order fields.

    .venv/bin/python benchmarks/catalog_refresh.py --entities 20000 --db postgresql
    .venv/bin/python benchmarks/catalog_refresh.py --entities 20000 --db sqlite

Generates the entities of benchmarks/catalog.py as YAML files (one location per file) and
registers them, then measures:

1. a background refresh pass over every location with nothing changed, through
   ``catalog.refresh.refresh_claimed`` (what each ``catalog.refresh_location`` task runs:
   lock, read, validate, compare etags, record) -- and how many entities it rewrote (0:
   unchanged entities keep their etag);
2. the same pass after 10% of the entities changed;
3. one root file whose Location entity targets every file (``spec.targets``), registered
   and refreshed as one tree, against the flat registrations above;
4. by-query first and later page (``filter=kind=component``, limit 20) ordered by one
   field, by two (``kind,asc`` + ``metadata.name,desc``: mixed directions) and by a spec
   field then the name: p50/p95 over ``--requests`` calls in-process
   (``CatalogService.query_entities`` on one session; no HTTP).

PostgreSQL runs in a fresh schema of the test database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlalchemy import func, select

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks import scratch  # noqa: E402
from catalog import refresh  # noqa: E402
from catalog.locations import LocationPolicy  # noqa: E402
from catalog.service import CatalogService  # noqa: E402
from catalog.tables import CatalogEntity  # noqa: E402
from portal_backend.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.settings import Settings  # noqa: E402


def _generator():  # type: ignore[no-untyped-def]
    """benchmarks/catalog.py (its module name would shadow the catalog package)."""
    spec = importlib.util.spec_from_file_location(
        "catalog_bench", REPO_ROOT / "benchmarks" / "catalog.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class Results(list[tuple[str, str]]):
    """Figures in measuring order, each also printed as soon as it is known."""

    def append(self, item: tuple[str, str]) -> None:
        print(f"  {item[0]}: {item[1]}", flush=True)
        super().append(item)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(count: int, call: Callable[[int], object]) -> tuple[float, float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), percentile(samples, 0.95)


def rewritten_since(factory, since: datetime) -> int:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(CatalogEntity)
                .where(CatalogEntity.updated_at > since)
            )
            or 0
        )


def rate(seconds: float, entities: int, rewritten: int) -> str:
    return f"{seconds:.1f} s ({entities / seconds:,.0f} entities/s), {rewritten} rewritten"


def refresh_pass(factory, ids: list[str], policy: LocationPolicy) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Seconds for one refresh of every location, and how many entities it rewrote."""
    since = datetime.now(UTC)
    start = time.perf_counter()
    for location_id in ids:
        outcome = refresh.refresh_claimed(factory, location_id, policy)
        assert outcome.state == "refreshed", (outcome.state, outcome.error)
    return time.perf_counter() - start, rewritten_since(factory, since)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--per-location", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "RAGPORTAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    bench = _generator()
    workdir = Path(tempfile.mkdtemp(prefix="catalog-refresh-bench-"))
    values: dict = {"data_dir": workdir, "log_json": False, "log_level": "WARNING"}
    schema = None
    if args.db == "postgresql":
        schema, values["database_url_override"] = scratch.create_schema(args.postgres_url)
    settings = Settings(**values)
    engine = None
    try:
        upgrade_database(settings)
        engine = make_engine(settings.database_url)
        factory = make_session_factory(engine)
        policy = LocationPolicy(file_roots=(workdir,), max_bytes=64 * 1024 * 1024)
        entities = bench.generate(args.entities, random.Random(42))
        paths = bench.write_locations(entities, workdir / "flat", args.per_location, revision=1)
        start = time.perf_counter()
        ids = []
        for path in paths:
            with session_scope(factory) as session:
                ids.append(
                    CatalogService(session, policy=policy).add_location("file", str(path))[
                        "location"
                    ]["id"]
                )
        import_s = time.perf_counter() - start
        print(
            f"registered {len(paths)} locations, {args.entities} entities in {import_s:.1f}s",
            flush=True,
        )
        results = Results()

        seconds, rewritten = refresh_pass(factory, ids, policy)
        results.append(
            (
                f"background refresh pass, {len(ids)} locations, nothing changed",
                rate(seconds, args.entities, rewritten),
            )
        )
        # 10% of the entities change (a new annotation value), in place in their files.
        rng = random.Random(7)
        changed = rng.sample(range(len(entities)), len(entities) // 10)
        for index in changed:
            entities[index]["metadata"]["annotations"]["bench/changed"] = "yes"
        for index, path in enumerate(paths):
            chunk = entities[index * args.per_location : (index + 1) * args.per_location]
            path.write_text(yaml.dump_all(chunk, Dumper=yaml.CSafeDumper, sort_keys=False))
        seconds, rewritten = refresh_pass(factory, ids, policy)
        results.append(
            (
                "background refresh pass, 10% of the entities changed",
                rate(seconds, args.entities, rewritten),
            )
        )

        # The same files as one tree: a root file whose Location entity targets them all.
        tree = workdir / "tree"
        shutil.copytree(workdir / "flat", tree)
        root = tree / "all.yaml"
        root.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Location",
                    "metadata": {"name": "bench-all"},
                    "spec": {"targets": [f"./{p.name}" for p in paths]},
                }
            )
        )
        with session_scope(factory) as session:
            service = CatalogService(session, policy=policy)
            for location_id in ids:
                service.delete_location(location_id)
        start = time.perf_counter()
        with session_scope(factory) as session:
            tree_id = CatalogService(session, policy=policy).add_location("file", str(root))[
                "location"
            ]["id"]
        tree_import = time.perf_counter() - start
        seconds, rewritten = refresh_pass(factory, [tree_id], policy)
        results.append(
            (
                f"one Location entity with {len(paths)} targets: register / refresh unchanged",
                f"{tree_import:.1f} s / " + rate(seconds, args.entities, rewritten),
            )
        )

        orders = {
            "metadata.name,asc": [("metadata.name", "asc")],
            "kind,asc + metadata.name,desc": [("kind", "asc"), ("metadata.name", "desc")],
            "spec.type,desc + metadata.name,asc": [("spec.type", "desc"), ("metadata.name", "asc")],
        }
        with session_scope(factory) as session:
            service = CatalogService(session)
            for label, order_by in orders.items():

                def first(_: int, order_by=order_by) -> dict:  # type: ignore[no-untyped-def]
                    return service.query_entities(
                        filters=["kind=component"], order_by=order_by, limit=20
                    )

                cursors = []
                page = first(0)
                for _ in range(args.requests):
                    cursor = page["pageInfo"].get("nextCursor")
                    if not cursor:
                        break
                    cursors.append(cursor)
                    page = service.query_entities(cursor=cursor, limit=20)
                p50, p95 = timed(args.requests, first)
                results.append((f"by-query first page, order {label}", f"{p50:.1f} / {p95:.1f} ms"))
                p50, p95 = timed(
                    len(cursors),
                    lambda i, cursors=cursors: service.query_entities(cursor=cursors[i], limit=20),
                )
                results.append(
                    (
                        f"by-query later pages ({len(cursors)}), order {label}",
                        f"{p50:.1f} / {p95:.1f} ms",
                    )
                )
        load_after = os.getloadavg()[0]
        print(f"\n{args.db}, {args.entities} entities, {len(paths)} locations;", end=" ")
        print(f"1-minute load average {load_before:.2f} -> {load_after:.2f}")
        for name, value in results:
            print(f"| {name} | {value} |")
    finally:
        if engine is not None:
            engine.dispose()
        if schema:
            scratch.drop_schema(args.postgres_url, schema)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
