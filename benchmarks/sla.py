"""SLA benchmark: usage ingest over HTTP, SLO-status query, fleet cost summary.

    .venv/bin/python benchmarks/sla.py --records 1000000 --db postgresql
    .venv/bin/python benchmarks/sla.py --records 200000 --db sqlite --workers 1

1. Ingest: ``--records`` usage records in batches of ``--batch`` pushed on
   ``--concurrency`` keep-alive connections (``--pipeline`` requests in flight on each)
   to a portal started in its own process(es) (``--workers`` processes: one uvicorn with
   that many workers, or with ``--balance round-robin`` that many single-process
   portals, connection c on portal c mod N), with each
   service's ingest token (``--token``, issued through ``POST .../ingest-tokens``).
   ``--pushing-services`` N services push (default: one per connection, as a fleet
   does, each RAG service with its own token; 1 = every batch for one service, all
   queueing on its hour/day rollup rows). Connection c pushes for service c mod N
   (``--dispatch fixed``; ``shared``: every connection takes the next batch of any
   service from one queue). Bodies and, for the default raw client, whole HTTP requests
   are serialised before the clock starts. Printed: records/s overall and per tenth of
   the run, when each connection finished, CPU per batch of the portal, PostgreSQL and
   the client, the machine's busy cores, and the rollup and batch-id tables' dead rows,
   HOT updates and sizes; then every service's folded request count is checked against
   what was sent for it.
2. SLO status over 30 days of minute rollups of one service (43,200 minute rows and
   720 hour rows, ~50 requests/minute of lognormal latencies): p50/p95 of the core
   window query (domain function) and of ``GET /api/sla/services/...?window=30d``
   (whole report: 4 windows, burn rates, cost, chart series) over real HTTP.
3. Fleet cost summary for ``--services`` services with 30 days of hourly spend:
   ``GET /api/sla/costs?groupBy=service|owner&window=30d``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks import scratch  # noqa: E402
from catalog.service import CatalogService  # noqa: E402
from portal_backend.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.settings import Settings  # noqa: E402
from portal_backend.sla import rollups, services, stats  # noqa: E402
from portal_backend.sla.tables import CostAccrual  # noqa: E402

TOKEN = "bench-bootstrap-token"


def cpu_seconds(root: int) -> float:
    """User+system CPU of a process and its descendants (Linux /proc), in seconds."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process (includes other users of the server)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent busy (not idle/iowait) since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def print_table_stats(postgres_url: str, schema: str) -> None:
    """Size, dead tuples and HOT share of the tables the push writes (bloat over the run).
    The portal's sessions report their counts to the statistics system within seconds,
    so the last batches may be missing from the counts (not from the sizes)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT relname, n_live_tup, n_dead_tup, n_tup_ins, n_tup_upd, n_tup_hot_upd,
                      autovacuum_count, pg_relation_size(relid), pg_indexes_size(relid)
               FROM pg_stat_user_tables WHERE schemaname = %s
               AND relname IN ('sla_usage_rollups', 'sla_ingest_batches') ORDER BY relname""",
            (schema,),
        ).fetchall()
    for name, live, dead, ins, upd, hot, vacuums, heap, index in rows:
        print(
            f"{name}: {live:,} live / {dead:,} dead rows, {ins:,} inserts, {upd:,} updates "
            f"({hot:,} HOT), {vacuums} autovacuum(s), heap {heap / 1e6:.1f} MB, "
            f"indexes {index / 1e6:.1f} MB"
        )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def entity(name: str, owner: str) -> dict:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": name,
            "annotations": {
                "rag-portal.io/slo-success-rate": "95",
                "rag-portal.io/slo-p95-latency-ms": "2500",
                "rag-portal.io/monthly-budget-usd": "2000",
                "rag-portal.io/gpu-class": "nvidia-l4",
                "rag-portal.io/gpus": "1",
                "rag-portal.io/replicas": "2",
            },
        },
        "spec": {"type": "rag-service", "lifecycle": "production", "owner": owner},
    }


def start_server(settings: Settings, port: int, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "RAGPORTAL_DATA_DIR": str(settings.data_dir),
        "RAGPORTAL_BOOTSTRAP_TOKEN": TOKEN,
        "RAGPORTAL_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    if settings.database_url_override:
        env["DATABASE_URL"] = settings.database_url_override
    code = (
        "import uvicorn; "
        f"uvicorn.run('portal_backend.app:create_app', factory=True, host='127.0.0.1', "
        f"port={port}, workers={workers}, log_config=None, access_log=False)"
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


def make_bodies(
    refs: list[str], records: int, batch: int, now: datetime
) -> list[tuple[int, bytes]]:
    """Batches as RAG APIs would send them: batch b is service b mod len(refs)'s, and
    each service's batches are consecutive over the same 35 minutes of its traffic.
    Returns (service index, body) pairs."""
    rng = np.random.default_rng(1)
    bodies = []
    start = now - timedelta(minutes=40)
    batches = records // batch
    per_service = -(-batches // len(refs))
    span = timedelta(minutes=35).total_seconds() / max(1, per_service * batch)
    outcomes = ["success"] * 96 + ["error"] * 2 + ["timeout", "refused"]
    for b in range(batches):
        service, nth = b % len(refs), b // len(refs)
        lat = rng.lognormal(6.8, 0.6, batch)
        rows = []
        for i in range(batch):
            k = nth * batch + i
            rows.append(
                {
                    "service": refs[service],
                    "timestamp": (start + timedelta(seconds=k * span)).isoformat(),
                    "latency_ms": round(float(lat[i]), 2),
                    "ttft_ms": round(float(lat[i]) / 5, 2),
                    "prompt_tokens": 350 + k % 200,
                    "completion_tokens": 80 + k % 120,
                    "outcome": outcomes[k % 100],
                    "model": "llama-3-8b-instruct",
                }
            )
        body = orjson.dumps({"batch_id": f"bench-{uuid.uuid4().hex}", "records": rows})
        bodies.append((service, body))
    return bodies


def connection_shares(
    bodies: list[tuple[int, bytes]], services: int, connections: int
) -> list[list[tuple[int, bytes]]]:
    """Connection c pushes for service c mod ``services`` only; a service served by
    several connections (fewer services than connections) has its batches dealt
    round-robin among them, in order."""
    serving: dict[int, list[int]] = {}
    for c in range(connections):
        serving.setdefault(c % services, []).append(c)
    shares: list[list[tuple[int, bytes]]] = [[] for _ in range(connections)]
    dealt: dict[int, int] = {}
    for service, body in bodies:
        mine = serving.get(service) or [service % connections]
        n = dealt.get(service, 0)
        dealt[service] = n + 1
        shares[mine[n % len(mine)]].append((service, body))
    return shares


async def push_all(
    urls: list[str], shares: list[list[tuple[int, bytes]]], tokens: list[str]
) -> float:
    """httpx.AsyncClient, one worker per share (its own connection, one request at a time);
    share c goes to ``urls[c mod len(urls)]``."""
    limits = httpx.Limits(max_connections=len(shares), max_keepalive_connections=len(shares))
    headers = [
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"} for token in tokens
    ]

    async def worker(client: httpx.AsyncClient, share: list[tuple[int, bytes]]) -> None:
        for service, body in share:
            response = await client.post("/api/sla/usage", content=body, headers=headers[service])
            if response.status_code != 200:
                raise RuntimeError(f"push failed: {response.status_code} {response.text[:300]}")

    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=120) for url in urls]
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(worker(clients[c % len(clients)], share) for c, share in enumerate(shares))
        )
        return time.perf_counter() - start
    finally:
        for client in clients:
            await client.aclose()


async def push_raw(
    urls: list[str],
    shares: list[list[tuple[int, bytes]]],
    tokens: list[str],
    depth: int,
    marks: list[float] | None = None,
    mark_every: int = 0,
    finished: list[float] | None = None,
    shared_by: int = 0,
) -> float:
    """The same requests with the client cost taken out: each request is serialised to
    bytes (with its service's token) before the clock starts and each share is written
    on its own keep-alive HTTP/1.1 connection, up to ``depth`` in flight per connection
    (pipelining); responses are read by their Content-Length and checked for 200.
    ``shared_by`` > 0: one share, taken from in order by that many connections (a
    connection on a less busy portal worker sends more). Connection c goes to
    ``urls[c mod len(urls)]``. ``marks`` gets the time
    (perf_counter) at which every ``mark_every``-th answer came; ``finished`` the seconds
    after the start at which each connection had its last answer."""
    answered = 0
    heads = [
        f"POST /api/sla/usage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        for token in tokens
    ]
    raw_shares = [
        deque(
            (heads[service] + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            for service, body in share
        )
        for share in shares
    ]
    if shared_by:
        raw_shares = [raw_shares[0]] * shared_by

    async def connection(url: str, share: deque[bytes]) -> None:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        slots = asyncio.Semaphore(depth)  # requests in flight on this connection
        sent: asyncio.Queue[bool] = asyncio.Queue()  # True per request written, then False

        async def write() -> None:
            while share:
                await slots.acquire()
                if not share:  # another connection took the last one meanwhile
                    break
                writer.write(share.popleft())
                sent.put_nowait(True)
                await writer.drain()
            sent.put_nowait(False)

        async def read() -> None:
            nonlocal answered
            while await sent.get():
                header = await reader.readuntil(b"\r\n\r\n")
                status = int(header[9:12])
                length = int(header.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                payload = await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"push failed: {status} {payload[:300]!r}")
                slots.release()
                answered += 1
                if marks is not None and mark_every and answered % mark_every == 0:
                    marks.append(time.perf_counter())

        await asyncio.gather(write(), read())
        writer.close()
        if finished is not None:
            finished.append(time.perf_counter() - start)

    start = time.perf_counter()
    if marks is not None:
        marks.append(start)
    await asyncio.gather(
        *(connection(urls[c % len(urls)], share) for c, share in enumerate(raw_shares) if share)
    )
    return time.perf_counter() - start


def seed_minutes(factory, ref: str, end: datetime, days: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    per_minute = 50
    minutes = days * 1440
    start = end.timestamp() - minutes * 60
    start -= start % 60
    for offset in range(0, minutes, 720):
        count = min(720, minutes - offset)
        n = count * per_minute
        index = np.arange(n)
        ts = start + offset * 60 + (index // per_minute) * 60 + (index % per_minute)
        lat = rng.lognormal(6.8, 0.6, n)
        deltas = rollups.fold(
            np.zeros(n, dtype=np.int64),
            [ref],
            ts.astype(np.float64),
            lat,
            lat / 5,
            np.full(n, 400.0),
            np.full(n, 120.0),
            (rng.random(n) < 0.03).astype(np.int64),
            "bench",
        )
        with session_scope(factory) as session:
            rollups.apply_deltas(session, deltas)


def seed_fleet(factory, count: int, end: datetime, days: int = 30) -> None:  # type: ignore[no-untyped-def]
    now = end
    rows = [
        {
            "service_ref": f"component:default/svc-{i:04d}",
            "owner": f"group:default/team-{i % 40:02d}",
            "namespace": f"svc-{i:04d}",
            "cluster": None,
            "slo_p95_latency_ms": 2500.0,
            "slo_success_rate": 95.0,
            "monthly_budget_usd": 2000.0,
            "gpu_class": "nvidia-l4",
            "gpus": 1.0,
            "replicas": 2.0,
            "deployment_state": "Healthy",
            "synced_at": now,
        }
        for i in range(count)
    ]
    with session_scope(factory) as session:
        services.upsert_services(session, rows)
    first_hour = int(end.timestamp()) // 3600 * 3600 - days * 24 * 3600
    table = CostAccrual.__table__
    for i in range(count):
        ref = f"component:default/svc-{i:04d}"
        rate = 0.8 * (1 + i % 4)
        hours = [
            {
                "service_ref": ref,
                "period": "1h",
                "bucket_ts": first_hour + h * 3600,
                "usd": rate,
                "gpu_hours": 2.0,
                "source": "provisioned",
            }
            for h in range(days * 24)
        ]
        days_rows = {}
        for h in hours:
            day = h["bucket_ts"] - h["bucket_ts"] % 86400
            days_rows.setdefault(day, 0.0)
            days_rows[day] += rate
        day_list = [
            {
                "service_ref": ref,
                "period": "1d",
                "bucket_ts": d,
                "usd": v,
                "gpu_hours": 48.0,
                "source": "provisioned",
            }
            for d, v in days_rows.items()
        ]
        with session_scope(factory) as session:
            session.connection().execute(table.insert(), hours + day_list)


def time_http(client: httpx.Client, path: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text[:300]
    return {"p50": statistics.median(samples), "p95": percentile(samples, 0.95)}


def print_results(args: argparse.Namespace, results: list[tuple[str, str, str]]) -> None:
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"| figure ({args.db}) | measured | goal |")
    print("| --- | --- | --- |")
    for name, value, goal in results:
        print(f"| {name} | {value} | {goal} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8, help="connections")
    parser.add_argument(
        "--pushing-services",
        type=int,
        default=None,
        help="services pushing, each with its own ingest token; connection c pushes for "
        "service c mod N (default: one per connection; 1: the contended single-service case)",
    )
    parser.add_argument("--workers", type=int, default=2, help="portal processes")
    parser.add_argument(
        "--balance",
        choices=["kernel", "round-robin"],
        default="round-robin",
        help="round-robin: N single-process portals (what `ragportal serve` and each API "
        "replica of the chart run) on N ports, connection c to portal c mod N, as a "
        "balancer in front of N replicas does; kernel: one `uvicorn --workers N` (the "
        "workers share one listening socket and the kernel decides which accepts each "
        "connection: 8 connections split 4/4 to 8/0, so one worker idles while the other "
        "still serves its connections)",
    )
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--token",
        choices=["ingest", "admin"],
        default="ingest",
        help="push with the service's ingest token (what a RAG service does) or the admin token",
    )
    parser.add_argument(
        "--ingest-only", action="store_true", help="skip the SLO-status and fleet-cost figures"
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="raw: pre-serialised HTTP/1.1 requests on keep-alive connections (least client "
        "CPU); httpx: httpx.AsyncClient",
    )
    parser.add_argument(
        "--pipeline", type=int, default=1, help="raw client: requests in flight per connection"
    )
    parser.add_argument(
        "--dispatch",
        choices=["fixed", "shared"],
        default="fixed",
        help="raw client: fixed = connection c sends service c mod N's batches, so the run "
        "ends when the slowest portal worker has served its connections' shares; shared = "
        "every connection takes the next batch (any service, with its token) from one queue",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "RAGPORTAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    pushing = args.pushing_services or args.concurrency
    if pushing < 1 or args.records // args.batch < pushing:
        parser.error("--pushing-services must be between 1 and the number of batches")
    workdir = Path(tempfile.mkdtemp(prefix="sla-bench-"))
    values: dict = {"data_dir": workdir, "log_json": False, "log_level": "WARNING"}
    schema = None
    if args.db == "postgresql":
        schema, values["database_url_override"] = scratch.create_schema(args.postgres_url)
    settings = Settings(**values)
    servers: list[subprocess.Popen] = []
    results: list[tuple[str, str, str]] = []
    try:
        upgrade_database(settings)
        factory = make_session_factory(make_engine(settings.database_url))
        now = datetime.now(UTC)
        names = [f"ingest-bench-{i:02d}" for i in range(pushing)]
        refs = [f"component:default/{name}" for name in names]
        with session_scope(factory) as session:
            CatalogService(session).upsert_entities(
                [entity(name, "team-a") for name in names] + [entity("slo-bench", "team-a")]
            )
            services.sync_from_catalog(session, now)
        processes = args.workers if args.balance == "round-robin" else 1
        urls = []
        for _ in range(processes):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            servers.append(
                start_server(settings, port, 1 if args.balance == "round-robin" else args.workers)
            )
            urls.append(f"http://127.0.0.1:{port}")
        url = urls[0]
        push_tokens = [TOKEN] * pushing
        if args.token == "ingest":
            # Issued the way an operator does it: the admin API, one token per service.
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
            ) as client:
                push_tokens = []
                for name in names:
                    response = client.post(
                        f"/api/sla/services/component/default/{name}/ingest-tokens"
                    )
                    assert response.status_code == 201, response.text[:300]
                    push_tokens.append(response.json()["token"])

        print(f"generating {args.records:,} records for {pushing} service(s) ...", flush=True)
        bodies = make_bodies(refs, args.records, args.batch, now)
        if args.dispatch == "shared" and args.client == "raw":
            shares = [bodies]
        else:
            shares = connection_shares(bodies, pushing, args.concurrency)
        mb = sum(len(b) for _, b in bodies) / 1e6
        print(
            f"pushing {len(bodies)} batches ({mb:,.0f} MB) for {pushing} service(s) on "
            f"{args.concurrency} connections ...",
            flush=True,
        )
        cpu_before = sum(cpu_seconds(server.pid) for server in servers)
        pg_before = postgres_cpu_seconds()
        client_before = time.process_time()
        busy_before = machine_busy_seconds()
        load_before = os.getloadavg()[0]
        marks: list[float] = []
        finished: list[float] = []
        segment = max(1, len(bodies) // 10)
        if args.client == "raw":
            elapsed = asyncio.run(
                push_raw(
                    urls,
                    shares,
                    push_tokens,
                    args.pipeline,
                    marks,
                    segment,
                    finished,
                    shared_by=args.concurrency if args.dispatch == "shared" else 0,
                )
            )
        else:
            elapsed = asyncio.run(push_all(urls, shares, push_tokens))
        client_cpu = time.process_time() - client_before
        busy = machine_busy_seconds() - busy_before
        server_cpu = sum(cpu_seconds(server.pid) for server in servers) - cpu_before
        pg_cpu = postgres_cpu_seconds() - pg_before
        rate = args.records / elapsed
        # Every record sent must have been folded, into its own service's rollups.
        sent = [0] * pushing
        for service, _ in bodies:
            sent[service] += args.batch
        end = int(time.time()) + 120
        with session_scope(factory) as session:
            folded = [stats.window_stats(session, ref, end - 7200, end).requests for ref in refs]
        assert folded == sent, (folded, sent)
        print(
            f"checked: {sum(folded):,} records folded = {sum(sent):,} sent, per service "
            f"({pushing} service(s), {min(sent):,}-{max(sent):,} records each)"
        )
        print(f"ingest: {args.records:,} records in {elapsed:.1f}s = {rate:,.0f} records/s")
        if len(marks) > 1:
            # Does the rate hold over the run? (Per tenth of the batches, in answer order.)
            rates = [
                f"{segment * args.batch / (b - a) / 1000:,.0f}k"
                for a, b in zip(marks, marks[1:], strict=False)
            ]
            print(f"records/s per {segment * args.batch:,} records: {' '.join(rates)}")
        if finished:
            # Each connection stays on the worker that accepted it: a worker whose
            # connections are done idles while the other still serves its own.
            print(
                "connections done at: "
                + " ".join(f"{t:.1f}" for t in sorted(finished))
                + f" s (of {elapsed:.1f})"
            )
        if schema:
            print_table_stats(args.postgres_url, schema)
        print(
            f"portal CPU {server_cpu:.1f}s ({args.records / server_cpu:,.0f} records per "
            f"CPU-second), PostgreSQL CPU {pg_cpu:.1f}s (all sessions), load average "
            f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        batches = len(bodies)
        print(
            f"CPU per batch of {args.batch:,} ({args.token} token): portal "
            f"{1000 * server_cpu / batches:.2f} ms, PostgreSQL {1000 * pg_cpu / batches:.2f} ms, "
            f"benchmark client {1000 * client_cpu / batches:.2f} ms; wall "
            f"{1000 * elapsed / batches:.2f} ms per batch on {os.cpu_count()} cores"
        )
        ours = server_cpu + pg_cpu + client_cpu
        print(
            f"machine: {busy:.1f} of {elapsed * (os.cpu_count() or 1):.1f} core-seconds busy; "
            f"portal + PostgreSQL + client {ours:.1f}, everything else {busy - ours:.1f}"
        )
        results.append(
            (
                f"ingest {args.records:,} records, batches of {args.batch:,}, "
                f"{args.concurrency} connections ({args.client} client"
                + (
                    f", pipeline {args.pipeline}, {args.dispatch} dispatch"
                    if args.client == "raw"
                    else ""
                )
                + f"), {pushing} pushing service(s), {args.workers} worker(s) "
                f"({args.balance} balance), "
                f"{args.token} token(s)",
                f"{rate:,.0f} records/s",
                ">= 200,000 records/s",
            )
        )
        results.append(
            (
                "ingest cost: portal processes' CPU per record (load-independent)",
                f"{args.records / server_cpu:,.0f} records per CPU-second",
                "(capacity per core)",
            )
        )
        if args.db == "postgresql":
            results.append(
                (
                    "ingest cost: PostgreSQL CPU (all sessions on the server)",
                    f"{args.records / max(pg_cpu, 1e-9):,.0f} records per CPU-second",
                    "",
                )
            )
        results.append(
            (
                "cores busy during the push (ours / everything else)",
                f"{busy / elapsed:.2f} of {os.cpu_count()} ({ours / elapsed:.2f} / "
                f"{(busy - ours) / elapsed:.2f})",
                "",
            )
        )
        results.append(
            (
                "CPU per batch: portal / PostgreSQL / benchmark client",
                f"{1000 * server_cpu / batches:.2f} / {1000 * pg_cpu / batches:.2f} / "
                f"{1000 * client_cpu / batches:.2f} ms",
                "",
            )
        )
        if args.ingest_only:
            print_results(args, results)
            return

        print("seeding 30 days of minute rollups ...", flush=True)
        seed_minutes(factory, "component:default/slo-bench", now, 30)
        if schema:
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                conn.execute(f'ANALYZE "{schema}".sla_usage_rollups')
        samples = []
        end = int(now.timestamp())
        for _ in range(args.runs):
            start = time.perf_counter()
            with session_scope(factory) as session:
                window = stats.window_stats(
                    session, "component:default/slo-bench", end - 30 * 86400, end
                )
                window.latency_quantile(0.95)
            samples.append((time.perf_counter() - start) * 1000)
        assert window.requests >= 29 * 1440 * 50
        results.append(
            (
                "SLO window query, 30 days of minute rollups (domain function)",
                f"p50 {statistics.median(samples):.1f} ms, p95 {percentile(samples, 0.95):.1f} ms",
                "p95 <= 10 ms",
            )
        )
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as client:
            http_slo = time_http(
                client, "/api/sla/services/component/default/slo-bench?window=30d", args.runs
            )
            results.append(
                (
                    "GET /api/sla/services/...?window=30d (full report) over HTTP",
                    f"p50 {http_slo['p50']:.1f} ms, p95 {http_slo['p95']:.1f} ms",
                    "p95 <= 10 ms (for the status query)",
                )
            )
            print(f"seeding {args.services} services x 30 days of hourly cost ...", flush=True)
            seed_fleet(factory, args.services, now)
            if schema:
                with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                    conn.execute(f'ANALYZE "{schema}".sla_cost_buckets')
                    conn.execute(f'ANALYZE "{schema}".sla_services')
            runs = max(10, args.runs // 4)
            for group in ("service", "owner"):
                fleet = time_http(client, f"/api/sla/costs?groupBy={group}&window=30d", runs)
                results.append(
                    (
                        f"GET /api/sla/costs?groupBy={group}&window=30d, "
                        f"{args.services:,} services",
                        f"p50 {fleet['p50']:.0f} ms, p95 {fleet['p95']:.0f} ms",
                        "p95 <= 200 ms",
                    )
                )
        print_results(args, results)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)
        if schema:
            scratch.drop_schema(args.postgres_url, schema)


if __name__ == "__main__":
    main()
