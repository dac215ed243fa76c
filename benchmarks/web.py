"""Portal UI benchmark: server-side render time of the main pages.

    .venv/bin/python benchmarks/web.py --entities 5000 --db sqlite
    .venv/bin/python benchmarks/web.py --entities 5000 --db postgresql

Seeds the catalog through CatalogService (Components, a tenth of them RAG services with
deployment/SLO status, plus their Resources), pushes a day of usage and accrues cost for
one service, signs in through the login form and measures p50/p95 of whole page
responses (HTML, as the browser receives it) in-process with Starlette's TestClient.
The browser's own rendering and the static files are not included.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from datetime import timedelta
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
warnings.filterwarnings("ignore")

from fastapi.testclient import TestClient  # noqa: E402

from catalog.service import CatalogService  # noqa: E402
from portal_backend.app import create_app  # noqa: E402
from portal_backend.db import session_scope, upgrade_database  # noqa: E402
from portal_backend.settings import Settings  # noqa: E402
from portal_backend.sla import costs, services  # noqa: E402
from portal_backend.sla.clock import utcnow  # noqa: E402

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "bench-admin-token"


def entities(count: int) -> list[dict]:
    out: list[dict] = [
        {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Group",
            "metadata": {"name": f"team-{g}"},
            "spec": {"type": "team", "children": []},
        }
        for g in range(20)
    ]
    for i in range(count):
        rag = i % 10 == 0
        name = f"svc-{i:05d}"
        out.append(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {
                    "name": name,
                    "description": f"service number {i} answering questions",
                    "tags": ["rag"] if rag else ["web", f"tier-{i % 3}"],
                    "annotations": {
                        "rag-portal.io/service": name,
                        "rag-portal.io/monthly-budget-usd": "500",
                        "rag-portal.io/gpu-class": "L4",
                        "rag-portal.io/gpus": "1",
                        "rag-portal.io/slo-success-rate": "95",
                        "rag-portal.io/slo-p95-latency-ms": "2000",
                    }
                    if rag
                    else {},
                },
                "spec": {
                    "type": "rag-service" if rag else "service",
                    "owner": f"team-{i % 20}",
                    "lifecycle": ["production", "experimental"][i % 2],
                    "dependsOn": [f"resource:{name}-model-server"] if rag else [],
                },
            }
        )
        if rag:
            out.append(
                {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Resource",
                    "metadata": {"name": f"{name}-model-server"},
                    "spec": {"type": "model-server", "owner": f"team-{i % 20}"},
                }
            )
    return out


def seed(app, count: int) -> None:  # type: ignore[no-untyped-def]
    factory = app.state.session_factory
    batch = entities(count)
    for start in range(0, len(batch), 500):
        with session_scope(factory) as session:
            CatalogService(session).upsert_entities(batch[start : start + 500])
    with session_scope(factory) as session:
        catalog = CatalogService(session)
        for i in range(0, count, 10):
            ref = f"component:default/svc-{i:05d}"
            catalog.set_status(ref, "deployment", {"state": ["Healthy", "Degraded"][i % 20 // 10]})
            catalog.set_status(ref, "slo", {"state": ["ok", "breached"][i % 30 // 20]})


def usage(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    ref = "component:default/svc-00000"
    records = [
        {
            "service": ref,
            "timestamp": (now - timedelta(seconds=30 * i)).isoformat(),
            "latency_ms": 300.0 + i % 700,
            "ttft_ms": 90.0,
            "prompt_tokens": 300,
            "completion_tokens": 80,
            "outcome": "error" if i % 25 == 0 else "success",
        }
        for i in range(2880)
    ]
    for start in range(0, len(records), 1000):
        response = client.post(
            "/api/sla/usage",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"batch_id": uuid.uuid4().hex, "records": records[start : start + 1000]},
        )
        response.raise_for_status()
    with session_scope(app.state.session_factory) as session:
        service = services.sync_one(session, ref, now)
        costs.accrue(session, [service], now - timedelta(days=20))
        costs.accrue(session, [service], now)


def sign_in(client: TestClient) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/login", data={"token": TOKEN, "csrf": csrf}).status_code == 303


def measure(client: TestClient, path: str, runs: int) -> tuple[float, float]:
    client.get(path).raise_for_status()  # warm caches (templates, statements)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=5000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    schema = None
    values: dict = {
        "data_dir": data_dir,
        "bootstrap_token": TOKEN,
        "log_json": False,
        "log_level": "WARNING",
    }
    if args.db == "postgresql":
        schema = f"bench_web_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        values["database_url_override"] = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        settings = Settings(**values)
        upgrade_database(settings)
        app = create_app(settings)
        started = time.perf_counter()
        seed(app, args.entities)
        seeded = time.perf_counter() - started
        client = TestClient(app, follow_redirects=False)
        usage(client, app)
        sign_in(client)
        pages = [
            ("home", "/"),
            ("catalog, first page + 7 facets", "/catalog"),
            (
                "catalog, kind+type+owner filters",
                "/catalog?kind=component&type=rag-service&owner=team-3",
            ),
            ("catalog, full-text search", "/catalog?q=number+42"),
            ("entity page, RAG service 24h", "/catalog/default/component/svc-00000"),
            ("entity page, RAG service 30d", "/catalog/default/component/svc-00000?window=30d"),
            ("create form (rag-service)", "/create/templates/default/rag-service"),
            ("admin", "/admin"),
        ]
        print(f"db={args.db} entities={args.entities} (seeded in {seeded:.1f} s), runs={args.runs}")
        print("| page | p50 ms | p95 ms |\n| --- | ---: | ---: |")
        for label, path in pages:
            p50, p95 = measure(client, path, args.runs)
            print(f"| {label} | {p50:.1f} | {p95:.1f} |")
        app.state.engine.dispose()
    finally:
        if schema:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
