"""Benchmark of a repository rendered from scaffolder_templates/rag-service.

1. Ingestion: chunks/s of `ingestion.pipeline.ingest` end to end (load, chunk, diff
   against Qdrant, embed, upsert into Qdrant local mode) against the bare
   `SentenceTransformer.encode` of the same chunk texts (real MiniLM, same batch size).
   Goal: pipeline overhead <= 10 %.
2. Query overhead: p50/p95 of POST /query (uvicorn, real MiniLM question embedding)
   against a zero-latency OpenAI-compatible stub LLM, so the figure is everything but the
   model, with N points in Qdrant. Goal: p95 <= 25 ms with 100k chunks. Two stores:
   - server: the production path, QDRANT_URL -> qdrant-client over REST -> the Qdrant
     stand-in (tests/qdrant_stand_in: Qdrant's engine, HNSW) in its own process; the
     collection is created from the deploy bundle's bootstrap config (HNSW m=16,
     ef_construct=100, int8 scalar quantization) and searched once it is indexed;
   - local: Qdrant local mode in memory (`make dev`, tests), a brute-force scan.
   The points get random unit vectors (embedding 100k chunks with MiniLM on 2 CPU cores
   would take longer than the benchmark is worth); random 384-d vectors are the hard case
   for HNSW, so its recall against an exact search is printed next to its latency.
   Question embedding and the bare search are also timed alone.

Run: .venv/bin/python benchmarks/rag_service.py [--chunks 2000] [--points 100000]
     [--parts ingestion,query-server,query-local] [--embedding-threads N,M]
     [--embedding-backends onnx,torch]
(renders the skeleton with the portal's cookiecutter, then measures inside the shared
generated-repo environment build/generated-venv).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE_QUALITY = ROOT / "benchmarks" / "rag_quality"
VENV_PYTHON = ROOT / "build" / "generated-venv" / "bin" / "python"

STUB_LLM = r"""
# Zero-latency OpenAI-compatible chat endpoint: a bare ASGI app sending precomputed
# bytes, so the "LLM" costs the shared CPU as little as possible.
import json

BASE = {"id": "c", "created": 0, "model": "stub"}
USAGE = {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103}


def event(**fields):
    body = {**BASE, "object": "chat.completion.chunk", **fields}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = b"".join(
    [
        event(choices=[{"index": 0, "delta": {"role": "assistant", "content": text},
                        "finish_reason": None}])
        for text in ("Answer", " [1]", ".")
    ]
    + [
        event(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        event(choices=[], usage=USAGE),
        b"data: [DONE]\n\n",
    ]
)
COMPLETE = json.dumps({**BASE, "object": "chat.completion", "usage": USAGE, "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "Answer [1]."},
     "finish_reason": "stop"}]}).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()


async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/models"):
        payload, kind = MODELS, b"application/json"
    elif json.loads(body or b"{}").get("stream"):
        payload, kind = STREAM, b"text/event-stream"
    else:
        payload, kind = COMPLETE, b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
"""

WORDS = (
    "policy budget cluster gpu latency vector token ingestion chunk replica quantization "
    "adapter runbook secret rotation namespace deployment service catalog owner prompt "
    "context citation answer question retrieval threshold metric alert dashboard cost"
).split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def render(out: Path) -> Path:
    from cookiecutter.main import cookiecutter

    return Path(
        cookiecutter(
            str(ROOT / "scaffolder_templates" / "rag-service" / "skeleton"),
            no_input=True,
            output_dir=str(out),
            extra_context={"service_name": "bench-bot"},
        )
    )


def write_corpus(folder: Path, chunks: int, chunk_size: int) -> None:
    """Markdown documents of ~8 chunks each, deterministic text."""
    import random

    rng = random.Random(7)
    per_doc = 8
    for d in range(max(1, chunks // per_doc)):
        sections = []
        for s in range(per_doc):
            words = " ".join(rng.choice(WORDS) for _ in range(chunk_size // 10))
            sections.append(f"## Section {s}\n\n{words}.")
        (folder / f"doc-{d:05d}.md").write_text(f"# Document {d}\n\n" + "\n\n".join(sections))


def inner_ingestion(repo: Path, chunks: int) -> dict:
    sys.path.insert(0, str(repo))
    from app.embeddings import SentenceTransformerEmbeddings, resolve_local_model
    from app.settings import Settings
    from app.vectorstore import make_client
    from ingestion.chunking import Chunker
    from ingestion.pipeline import ingest
    from ingestion.sources import SourcesConfig, enumerate_sources
    from rich.console import Console

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    settings = Settings(_env_file=None, qdrant_path=work / "qdrant")
    (work / "docs").mkdir()
    write_corpus(work / "docs", chunks, settings.chunk_size)
    embeddings = SentenceTransformerEmbeddings(
        resolve_local_model(settings.embedding_model), settings.embedding_batch_size
    )
    embeddings.embed_documents(["warm up"] * 8)
    items, problems = enumerate_sources(
        SourcesConfig(["docs"], [], [], []),
        base_dir=work,
        cache_dir=work / "cache",
        max_bytes=settings.max_document_bytes,
    )
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    client = make_client(settings)
    started = time.perf_counter()
    report = ingest(
        items,
        problems,
        client=client,
        collection=settings.collection_name,
        embeddings=embeddings,
        dimension=settings.embedding_dimension,
        chunker=chunker,
        batch_size=settings.embedding_batch_size,
        console=Console(file=open(os.devnull, "w")),  # noqa: SIM115
    )
    pipeline_s = time.perf_counter() - started
    texts = [c.text for item in items for c in chunker.split(item.load().documents, "local")]
    encode_runs = []
    for _ in range(2):  # the machine is shared: average two runs around the pipeline's
        started = time.perf_counter()
        embeddings.model.encode(
            texts, batch_size=settings.embedding_batch_size, normalize_embeddings=True
        )
        encode_runs.append(time.perf_counter() - started)
    encode_s = statistics.mean(encode_runs)
    started = time.perf_counter()
    rerun = ingest(
        items,
        problems,
        client=client,
        collection=settings.collection_name,
        embeddings=embeddings,
        dimension=settings.embedding_dimension,
        chunker=chunker,
        console=Console(file=open(os.devnull, "w")),  # noqa: SIM115
    )
    rerun_s = time.perf_counter() - started
    client.close()
    return {
        "chunks": report.chunks_added,
        "documents": report.documents_new,
        "pipeline_s": pipeline_s,
        "encode_s": encode_s,
        "pipeline_chunks_per_s": report.chunks_added / pipeline_s,
        "encode_chunks_per_s": len(texts) / encode_s,
        "overhead_pct": 100 * (pipeline_s - encode_s) / encode_s,
        # Same run, so immune to load drift between runs on a shared machine: the time
        # the pipeline spent outside its embedding calls, against the time inside them.
        "in_run_embedding_s": report.embedding_seconds,
        "in_run_overhead_pct": 100
        * (pipeline_s - report.embedding_seconds)
        / max(report.embedding_seconds, 1e-9),
        "rerun_s": rerun_s,
        "rerun_points_written": rerun.points_written,
    }


def corpus_chunks(repo: Path) -> tuple[list[str], list[str]]:
    """Chunk texts and golden questions of the answer-quality corpora (Debian's PostgreSQL
    manual and Docker reference, prepared by benchmarks/rag_quality.py into
    build/rag-quality/), chunked by the repository's own loaders and chunker; empty when
    they are not there."""
    from app.settings import Settings
    from ingestion.chunking import Chunker
    from ingestion.sources import SourcesConfig, enumerate_sources

    cache = ROOT / "build" / "rag-quality"
    folders = [str(cache / c / "docs") for c in ("postgresql", "docker")]
    if not all(Path(f).is_dir() for f in folders):
        return [], []
    settings = Settings(_env_file=None)
    items, _ = enumerate_sources(
        SourcesConfig(folders, [], [], []),
        base_dir=cache,
        cache_dir=cache / "sources",
        max_bytes=settings.max_document_bytes,
    )
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    texts = [c.text for item in items for c in chunker.split(item.load().documents, "local")]
    questions = [
        json.loads(line)["question"]
        for name in ("postgresql", "docker")
        for line in (HERE_QUALITY / f"{name}.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return texts, questions


def load_points(
    client, collection: str, points: int, dimension: int, lexical=None, corpus=None
) -> float:
    """`points` random unit vectors with chunk-like payloads, in batches; returns seconds.
    With `lexical` (the repository's LexicalEncoder; the collection has its sparse
    vector), each point also gets the BM25 vector of its text, as hybrid ranking searches
    them: a chunk of `corpus` (real documentation, so BM25's posting lists are as long as
    in use), else 40 random words of a 30-word vocabulary (BM25's worst case)."""
    import numpy as np
    from qdrant_client.http import models as qm

    rng = np.random.default_rng(3)
    started = time.perf_counter()
    batch = 2000
    for start in range(0, points, batch):
        n = min(batch, points - start)
        vectors = rng.standard_normal((n, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = (
            [corpus[int(i)] for i in rng.integers(0, len(corpus), n)]
            if corpus
            else [" ".join(rng.choice(WORDS, 40)) for _ in range(n)]
        )
        batch_vectors = vectors.tolist()
        if lexical is not None:
            batch_vectors = {"": batch_vectors, "lexical": [lexical.document(t) for t in texts]}
        client.upsert(
            collection,
            points=qm.Batch(
                ids=list(range(start, start + n)),
                vectors=batch_vectors,
                payloads=[
                    {
                        "page_content": f"chunk {start + i} " + texts[i],
                        "metadata": {
                            "source": f"docs/doc-{(start + i) // 8}.md",
                            "title": "Doc",
                            "section": "S",
                            "chunk_index": i % 8,
                        },
                    }
                    for i in range(n)
                ],
            ),
        )
    return time.perf_counter() - started


def wait_indexed(client, collection: str, timeout_s: float = 1800) -> float:
    """Seconds until the server's optimizer has indexed every point (status green)."""
    from qdrant_client.http import models as qm

    started = time.perf_counter()
    while True:
        info = client.get_collection(collection)
        if info.status == qm.CollectionStatus.GREEN:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"collection not indexed after {timeout_s} s: {info}")
        time.sleep(0.5)


def _start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_up(url: str, process: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not _up(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def inner_query(
    repo: Path,
    points: int,
    requests: int,
    qdrant_url: str,
    thread_settings: list[int],
    backends: list[str],
    rankings: list[str] | None = None,
) -> dict:
    """POST /query of the API run as in production (`uvicorn app.main:app` in its own
    process, settings from the environment) over Qdrant holding `points` points: the
    Qdrant server at `qdrant_url` (its collection created beforehand from the deploy
    bundle's bootstrap config, as in the cluster), or local mode in a folder when empty.
    The stub LLM runs in a third process; the requests come from this one. The API is
    measured once per QUERY_EMBEDDING_BACKEND in `backends` and QUERY_EMBEDDING_THREADS
    value in `thread_settings` (none: the app's defaults) over the same loaded
    collection."""
    sys.path.insert(0, str(repo))
    from app.embeddings import make_embeddings
    from app.settings import Settings
    from app.vectorstore import ensure_collection
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

    work = Path(tempfile.mkdtemp(prefix="rag-bench-q-"))
    stub_port = free_port()
    env = {
        "QDRANT_URL": qdrant_url,
        "QDRANT_PATH": str(work / "qdrant"),
        "LLM_BASE_URL": f"http://127.0.0.1:{stub_port}/v1",
        "FALLBACK_LLM_BASE_URL": "",
        # Random vectors score ~0: let every chunk through so the LLM path runs.
        "RELEVANCE_THRESHOLD": "-1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(repo),
        # The API's ONNX export of the question model is cached here: exported by the
        # first measured run's embedding-alone step, reused by the API's start.
        "ONNX_CACHE_DIR": str(work / "onnx-cache"),
    }
    os.environ.update(env)
    settings = Settings(_env_file=None)
    if qdrant_url:  # a bulk load and an index build take longer than the 5 s default
        client = QdrantClient(url=qdrant_url, timeout=1800, check_compatibility=False)
    else:
        client = QdrantClient(path=str(work / "qdrant"))
    hybrid = ensure_collection(client, settings.collection_name, settings.embedding_dimension)
    lexical = None
    if hybrid:  # a skeleton with hybrid ranking: the points get their BM25 vectors too
        from app.lexical import LexicalEncoder

        lexical = LexicalEncoder(settings.chunk_size)
    corpus, golden_questions = corpus_chunks(repo) if lexical is not None else ([], [])
    load_s = load_points(
        client, settings.collection_name, points, settings.embedding_dimension, lexical, corpus
    )
    index_s = wait_indexed(client, settings.collection_name) if qdrant_url else 0.0
    info = client.get_collection(settings.collection_name)
    embeddings = make_embeddings(settings)
    questions = golden_questions * 20 or [
        f"How do I rotate the {w} key for {v}?" for w in WORDS for v in WORDS
    ]

    # The Qdrant search alone (over REST in server mode), and its recall@k against an
    # exact search of the same collection.
    search_ms, recall = [], []
    k = settings.retrieval_k
    for q in questions[:50]:
        vector = embeddings.embed_query(q)
        t0 = time.perf_counter()
        found = client.query_points(settings.collection_name, query=vector, limit=k).points
        search_ms.append((time.perf_counter() - t0) * 1000)
        exact = client.query_points(
            settings.collection_name,
            query=vector,
            limit=k,
            search_params=qm.SearchParams(exact=True),
        ).points
        recall.append(len({p.id for p in found} & {p.id for p in exact}) / k)
    client.close()  # local mode: one process per folder, and the API is the next one

    (work / "stub_llm.py").write_text(STUB_LLM)
    stub_log = work / "stub.log"
    stub = _start(
        ["-m", "uvicorn", "stub_llm:app", "--port", str(stub_port), "--lifespan", "off",
         "--log-level", "warning", "--no-access-log"],
        work, {}, stub_log,
    )  # fmt: skip
    runs = []
    try:
        _wait_up(f"http://127.0.0.1:{stub_port}/v1/models", stub, stub_log)
        for ranking in rankings or [None]:
            for backend in backends or [None]:
                for threads in thread_settings or [None]:
                    run_env = dict(env)
                    if ranking is not None:
                        run_env["RETRIEVAL_RANKING"] = ranking
                    if backend is not None:
                        run_env["QUERY_EMBEDDING_BACKEND"] = backend
                    if threads is not None:
                        run_env["QUERY_EMBEDDING_THREADS"] = str(threads)
                    run = _measure_api(repo, work, run_env, questions, requests)
                    runs.append({**run, "ranking": ranking or "default"})
    finally:
        _stop(stub)
    return {
        "mode": "server" if qdrant_url else "local",
        "points": info.points_count,
        "indexed_vectors": info.indexed_vectors_count or 0,
        "load_s": load_s,
        "index_s": index_s,
        "search_p50_ms": statistics.median(search_ms),
        "search_p95_ms": p95(search_ms),
        "recall_at_k": statistics.mean(recall),
        "k": k,
        "runs": runs,
    }


def _measure_api(
    repo: Path, work: Path, env: dict[str, str], questions: list[str], requests: int
) -> dict:
    """The question embedding alone as the API embeds it (same backend and threads),
    then the API itself."""
    import httpx
    import torch
    from app.embeddings import make_embeddings
    from app.settings import Settings

    default_threads = torch.get_num_threads()
    threads = default_threads
    for name in ("QUERY_EMBEDDING_THREADS", "QUERY_EMBEDDING_BACKEND"):
        os.environ.pop(name, None)
    os.environ.update(env)
    settings = Settings(_env_file=None)
    try:
        from app.runtime import limit_torch_threads
    except ImportError:  # a skeleton from before the setting: torch's default
        pass
    else:
        limit_torch_threads(settings)
        threads = torch.get_num_threads()
    try:
        embeddings = make_embeddings(settings, for_queries=True)
    except TypeError:  # a skeleton from before the ONNX question encoder
        embeddings = make_embeddings(settings)
    backend = "onnx" if getattr(embeddings, "query_encoder", None) is not None else "torch"
    for q in questions[:5]:
        embeddings.embed_query(q)
    embed_ms = []
    for q in questions[:50]:
        t0 = time.perf_counter()
        embeddings.embed_query(q)
        embed_ms.append((time.perf_counter() - t0) * 1000)
    torch.set_num_threads(default_threads)

    api_port = free_port()
    api_log = work / f"api-{api_port}.log"
    api = _start(
        ["-m", "uvicorn", "app.main:app", "--port", str(api_port), "--log-level", "warning",
         "--no-access-log"],
        repo, env, api_log,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{api_port}"
        _wait_up(f"{base}/healthz", api, api_log)
        latencies = []
        with httpx.Client(timeout=120) as http:
            for i in range(requests + 20):
                started = time.perf_counter()
                response = http.post(f"{base}/query", json={"question": questions[i]})
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text
                assert response.json()["citations"], "retrieval returned nothing"
                if i >= 20:  # warm-up excluded
                    latencies.append(elapsed)
    finally:
        _stop(api)
    return {
        "setting": env.get("QUERY_EMBEDDING_THREADS", "default"),
        "backend": backend,
        "torch_threads": threads,
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p95_ms": p95(latencies),
        "embed_p50_ms": statistics.median(embed_ms),
        "embed_p95_ms": p95(embed_ms),
    }


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(0.95 * len(values)) - 1)]


def bootstrap_collection(repo: Path, url: str, collection: str) -> dict:
    """Creates the collection as the deploy bundle's bootstrap Job does: PUT of the
    rendered ConfigMap's collection.json (HNSW m/ef_construct, int8 quantization...)."""
    import httpx
    import yaml

    configmap = yaml.safe_load(
        (repo / "deploy" / "k8s" / "base" / "qdrant-bootstrap-configmap.yaml").read_text()
    )
    body = json.loads(configmap["data"]["collection.json"])
    response = httpx.put(f"{url}/collections/{collection}", json=body, timeout=60)
    response.raise_for_status()
    return body


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_inner(repo: Path, part: str, *extra: str) -> dict:
    out = subprocess.run(
        [str(VENV_PYTHON), __file__, "--inner", part, "--repo", str(repo), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if out.returncode != 0:
        sys.exit(f"{part} benchmark failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ingestion_rows(ing: dict) -> list[tuple[str, str, str]]:
    return [
        (
            "chunks ingested (MiniLM, Qdrant local mode)",
            f"{ing['chunks']} in {ing['documents']} docs",
            "",
        ),
        (
            "pipeline end to end",
            f"{ing['pipeline_s']:.1f} s = {ing['pipeline_chunks_per_s']:.1f} chunks/s",
            "",
        ),
        (
            "bare model.encode, same chunks (mean of 2)",
            f"{ing['encode_s']:.1f} s = {ing['encode_chunks_per_s']:.1f} chunks/s",
            "",
        ),
        ("pipeline overhead vs bare encode", f"{ing['overhead_pct']:.1f} %", "<= 10 %"),
        (
            "pipeline time outside embedding, same run",
            f"{ing['pipeline_s'] - ing['in_run_embedding_s']:.1f} s = "
            f"{ing['in_run_overhead_pct']:.1f} % of its embedding time",
            "<= 10 %",
        ),
        (
            "unchanged re-run",
            f"{ing['rerun_s']:.2f} s, {ing['rerun_points_written']} points written",
            "0 written",
        ),
    ]


def query_rows(q: dict) -> list[tuple[str, str, str]]:
    where = "Qdrant server (stand-in, HNSW)" if q["mode"] == "server" else "Qdrant local mode"
    rows = []
    for run in q["runs"]:
        rows += [
            (
                f"{where}: /query minus LLM, p50 / p95 ({q['points']} points, "
                f"{run['requests']} requests, question embedding on "
                f"{run.get('backend', 'torch')}, QUERY_EMBEDDING_THREADS={run['setting']}: "
                f"{run['torch_threads']} threads, ranking {run.get('ranking', 'default')})",
                f"{run['p50_ms']:.1f} / {run['p95_ms']:.1f} ms",
                "p95 <= 25 ms",
            ),
            (
                f"  question embedding alone (MiniLM, CPU, {run.get('backend', 'torch')}), "
                "p50 / p95",
                f"{run['embed_p50_ms']:.1f} / {run['embed_p95_ms']:.1f} ms",
                "",
            ),
        ]
    rows += [
        (
            f"  Qdrant search alone, p50 / p95 (recall@{q['k']} vs exact search "
            f"{q['recall_at_k']:.2f})",
            f"{q['search_p50_ms']:.1f} / {q['search_p95_ms']:.1f} ms",
            "",
        ),
        (f"  loading {q['points']} points", f"{q['load_s']:.0f} s", ""),
    ]
    if q["mode"] == "server":
        rows.append(
            (
                f"  indexing after the load (HNSW: {q['indexed_vectors']} vectors indexed)",
                f"{q['index_s']:.0f} s",
                "",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--parts",
        default="ingestion,query-server,query-local",
        help="comma-separated: ingestion, query-server, query-local",
    )
    parser.add_argument(
        "--embedding-threads",
        default="",
        help="comma-separated QUERY_EMBEDDING_THREADS values to measure the API with, "
        "e.g. 1,0 (0: the library's default; empty: the app's default)",
    )
    parser.add_argument(
        "--embedding-backends",
        default="",
        help="comma-separated QUERY_EMBEDDING_BACKEND values to measure the API with, "
        "e.g. onnx,torch (empty: the app's default)",
    )
    parser.add_argument(
        "--rankings",
        default="",
        help="comma-separated RETRIEVAL_RANKING values to measure the API with, e.g. "
        "hybrid,dense (empty: the app's default). The synthetic points are BM25's worst "
        "case: 30 words, each in nearly every point",
    )
    parser.add_argument("--inner", choices=["ingestion", "query"])
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--qdrant-url", default="")
    args = parser.parse_args()
    if args.inner == "ingestion":
        print(json.dumps(inner_ingestion(args.repo, args.chunks)))
        return
    if args.inner == "query":
        threads = [int(t) for t in args.embedding_threads.split(",") if t.strip()]
        backends = [b.strip() for b in args.embedding_backends.split(",") if b.strip()]
        rankings = [r.strip() for r in args.rankings.split(",") if r.strip()]
        result = inner_query(
            args.repo, args.points, args.requests, args.qdrant_url, threads, backends, rankings
        )
        print(json.dumps(result))
        return

    sys.path.insert(0, str(ROOT))
    from tests.qdrant_stand_in import running_qdrant

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    repo = render(Path(tempfile.mkdtemp(prefix="rag-bench-render-")))
    query_args = ["--points", str(args.points), "--requests", str(args.requests)]
    if args.embedding_threads:
        query_args += ["--embedding-threads", args.embedding_threads]
    if args.embedding_backends:
        query_args += ["--embedding-backends", args.embedding_backends]
    if args.rankings:
        query_args += ["--rankings", args.rankings]
    rows: list[tuple[str, str, str]] = []
    results: dict[str, dict] = {}
    print(f"load average before: {load_average()}", file=sys.stderr)
    for part in parts:
        if part == "ingestion":
            results[part] = run_inner(repo, "ingestion", "--chunks", str(args.chunks))
            rows += ingestion_rows(results[part])
        elif part == "query-local":
            results[part] = run_inner(repo, "query", *query_args)
            rows += query_rows(results[part])
        elif part == "query-server":
            with running_qdrant() as url:
                bootstrap_collection(repo, url, "bench-bot")
                results[part] = run_inner(repo, "query", *query_args, "--qdrant-url", url)
                rows += query_rows(results[part])
        else:
            sys.exit(f"unknown part {part!r}: use ingestion, query-server, query-local")
        print(f"load average after {part}: {load_average()}", file=sys.stderr)
    print(json.dumps(results), file=sys.stderr)
    print("| measure | value | goal |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
