"""A rendered repository in Qdrant server mode (`QDRANT_URL`, as in the cluster), end to end
with the real MiniLM model and SmolLM2, against the Qdrant stand-in (tests/qdrant_stand_in:
Qdrant's engine behind its REST API, with an API key like the bundle's StatefulSet).

The same checks as the local-mode test (test_real_models.py): ingestion of the example
corpus, a no-op re-run, golden questions retrieving their sources with hybrid ranking (BM25
sparse vectors with the server's IDF), /query with citations; plus changed and removed
documents leaving no stale points on the server.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from tests.qdrant_stand_in import running_qdrant
from tests.rag_template.conftest import render_defaults, run_in_venv
from tests.rag_template.test_real_models import _api, llm_url  # noqa: F401 - fixture

API_KEY = "server-mode-key"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, generated_venv: Path) -> Path:
    return render_defaults(
        tmp_path_factory.mktemp("server-mode"),
        service_name="docs-bot",
        include_example_corpus="true",
    )


@pytest.fixture(scope="module")
def qdrant_url() -> Iterator[str]:
    with running_qdrant(api_key=API_KEY) as url:
        yield url


@pytest.fixture(scope="module")
def server_env(qdrant_url: str, repo: Path) -> dict[str, str]:
    # QDRANT_PATH lies under a file, so local mode could not open it: server mode must
    # not fall back to it.
    return {
        "QDRANT_URL": qdrant_url,
        "QDRANT_API_KEY": API_KEY,
        "QDRANT_PATH": str(repo / "README.md" / "qdrant"),
        "EMBEDDING_PROVIDER": "local",
    }


@pytest.fixture(scope="module")
def qdrant(qdrant_url: str) -> Iterator[QdrantClient]:
    with warnings.catch_warnings():  # "Api key is used with an insecure connection"
        warnings.simplefilter("ignore", UserWarning)
        client = QdrantClient(url=qdrant_url, api_key=API_KEY, check_compatibility=False)
    yield client
    client.close()


def _ingest(repo: Path, env: dict[str, str], *args: str) -> dict:
    result = run_in_venv(repo, "-m", "ingestion", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def ingested(repo: Path, server_env: dict[str, str]) -> dict:
    return _ingest(repo, server_env)


def _sources(qdrant: QdrantClient, collection: str) -> dict[str, int]:
    points, _ = qdrant.scroll(collection, limit=10_000, with_payload=True)
    counts: dict[str, int] = {}
    for point in points:
        source = point.payload["metadata"]["source"]
        counts[source] = counts.get(source, 0) + 1
    return counts


def test_ingestion_into_the_server_and_a_no_op_rerun(
    repo: Path, server_env: dict[str, str], ingested: dict, qdrant: QdrantClient
):
    assert ingested["errors"] == []
    # Sections merge up to the chunk size: five short pages make 9 chunks, not 20.
    assert ingested["documents_new"] == 5 and ingested["chunks_added"] >= 8
    info = qdrant.get_collection("docs-bot")
    assert info.points_count == ingested["chunks_added"]
    assert info.config.params.vectors.size == 384
    assert info.config.params.sparse_vectors["lexical"].modifier == qm.Modifier.IDF
    assert info.payload_schema["metadata.source"].data_type == qm.PayloadSchemaType.KEYWORD
    rerun = _ingest(repo, server_env)
    assert rerun["chunks_added"] == rerun["chunks_updated"] == rerun["chunks_deleted"] == 0
    assert rerun["chunks_unchanged"] == ingested["chunks_added"]
    assert qdrant.count("docs-bot").count == ingested["chunks_added"]


def test_changed_and_removed_documents_leave_no_stale_points(
    repo: Path, server_env: dict[str, str], qdrant: QdrantClient, tmp_path: Path
):
    corpus = tmp_path / "corpus"
    shutil.copytree(repo / "examples" / "corpus", corpus / "docs")
    (corpus / "sources.json").write_text(json.dumps({"local_dirs": ["docs"]}))
    env = {**server_env, "COLLECTION_NAME": "docs-bot-sync"}
    sources = ("--sources", str(corpus / "sources.json"))
    first = _ingest(repo, env, *sources)
    before = _sources(qdrant, "docs-bot-sync")
    assert sum(before.values()) == first["chunks_added"]
    (corpus / "docs" / "architecture.md").write_text("# Architecture\n\nNow much shorter.\n")
    (corpus / "docs" / "operations" / "runbook.md").unlink()
    report = _ingest(repo, env, *sources)
    assert report["documents_changed"] == 1 and report["documents_removed"] == 1
    after = _sources(qdrant, "docs-bot-sync")
    assert "docs/operations/runbook.md" not in after
    assert after["docs/architecture.md"] == 1
    assert report["chunks_deleted"] == before["docs/operations/runbook.md"] + (
        before["docs/architecture.md"] - 1
    )
    unchanged = {s: n for s, n in before.items() if not s.startswith(("docs/arch", "docs/oper"))}
    assert {s: after[s] for s in unchanged} == unchanged


def test_golden_questions_retrieve_their_sources(
    repo: Path, server_env: dict[str, str], ingested: dict
):
    result = run_in_venv(repo, "-m", "eval", env=server_env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ranking"] == "hybrid"
    # As in local mode (test_real_models): one short-page question may be refused.
    answered = [q for q in report["per_question"] if q["answerable"] and not q["refused"]]
    assert all(q["rank"] is not None for q in answered)
    assert report["refused_answerable"] <= 1
    assert report["hit_at_k"] >= 0.85 and report["mrr"] >= 0.8
    assert report["refused_unanswerable"] == report["unanswerable"]


def test_query_answers_with_citations_from_the_server(
    repo: Path,
    server_env: dict[str, str],
    ingested: dict,
    llm_url: str,  # noqa: F811 - the fixture imported above
):
    env = {**server_env, "LLM_BASE_URL": llm_url, "FALLBACK_LLM_BASE_URL": ""}
    for url in _api(repo, Path(server_env["QDRANT_PATH"]), env, "api-server-mode"):
        response = httpx.post(
            f"{url}/query", json={"question": "How do I rotate the Qdrant API key?"}, timeout=120
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["answer"].strip()
        assert body["citations"][0]["source"] == "examples/corpus/operations/runbook.md"
        assert body["citations"][0]["section_or_page"]
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"]["qdrant"] == "ok"
