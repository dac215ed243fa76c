"""Ingestion: loaders, metadata, deterministic sync, sharding and bad inputs."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from qdrant_client import QdrantClient

from app.settings import Settings
from ingestion.pipeline import existing_chunks
from ingestion.sources import SourcesConfig
from tests.conftest import run_ingest
from tests.pdf_maker import text_pdf

DOCS = SourcesConfig(["docs"], [], [], [])


def _payloads(client: QdrantClient, collection: str) -> list[dict]:
    points, _ = client.scroll(collection, limit=10_000, with_payload=True)
    return [p.payload for p in points]


def test_sample_corpus_is_chunked_with_metadata(settings, client, corpus):
    report = run_ingest(settings, client, corpus, DOCS)
    assert report.errors == []
    assert report.documents_seen == report.documents_new == 5
    assert report.chunks_added > 5 and report.chunks_deleted == 0
    payloads = _payloads(client, settings.collection_name)
    assert len(payloads) == report.chunks_added
    sources = {p["metadata"]["source"] for p in payloads}
    assert "docs/getting-started.md" in sources and "docs/faq.html" in sources
    arch = [p for p in payloads if p["metadata"]["source"] == "docs/architecture.md"]
    assert arch[0]["metadata"]["title"] == "Architecture"
    assert any("Embedding model" in (p["metadata"]["section"] or "") for p in arch)
    faq = [p for p in payloads if p["metadata"]["source"] == "docs/faq.html"]
    assert faq[0]["metadata"]["title"] == "Frequently asked questions"
    assert all("analytics" not in p["page_content"] for p in faq)  # <script> never indexed
    assert any(w.source == "docs/faq.html" and "script" in w.message for w in report.warnings)


def test_rerun_without_changes_writes_nothing(settings, client, corpus):
    first = run_ingest(settings, client, corpus, DOCS)
    second = run_ingest(settings, client, corpus, DOCS)
    assert second.points_written == 0 and second.chunks_deleted == 0
    assert second.documents_unchanged == first.documents_new
    assert second.chunks_unchanged == first.chunks_added


def test_local_mode_commits_through_a_write_ahead_log_and_keeps_every_point(
    settings, client, corpus
):
    """Local mode's SQLite store is switched to write-ahead logging (a commit per point no
    longer waits for the disk); a new client (the API after ingestion) finds every point,
    and the next run sees nothing to write. Fails if a qdrant-client upgrade moves the
    storage write_ahead_local_storage reaches into."""
    first = run_ingest(settings, client, corpus, DOCS)
    stores = list(Path(settings.qdrant_path).rglob("storage.sqlite"))
    assert len(stores) == 1
    with sqlite3.connect(stores[0]) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    client.close()
    reopened = QdrantClient(path=str(settings.qdrant_path))
    try:
        assert reopened.count(settings.collection_name).count == first.chunks_added
        second = run_ingest(settings, reopened, corpus, DOCS)
    finally:
        reopened.close()
    assert second.points_written == 0 and second.chunks_unchanged == first.chunks_added


def test_changed_and_removed_documents_are_synced(settings, client, corpus):
    run_ingest(settings, client, corpus, DOCS)
    before = existing_chunks(client, settings.collection_name, 0, 1)
    (corpus / "docs" / "architecture.md").write_text("# Architecture\n\nNow much shorter.\n")
    (corpus / "docs" / "operations" / "runbook.md").unlink()
    report = run_ingest(settings, client, corpus, DOCS)
    assert report.documents_changed == 1 and report.documents_removed == 1
    assert report.chunks_updated == 1
    removed = len(before["docs/operations/runbook.md"])
    shrunk = len(before["docs/architecture.md"]) - 1
    assert report.chunks_deleted == removed + shrunk
    after = existing_chunks(client, settings.collection_name, 0, 1)
    assert "docs/operations/runbook.md" not in after
    assert len(after["docs/architecture.md"]) == 1
    assert run_ingest(settings, client, corpus, DOCS).points_written == 0


def test_shards_split_the_documents(settings, client, corpus):
    reports = [
        run_ingest(settings, client, corpus, DOCS, shard_index=i, shard_count=3) for i in range(3)
    ]
    assert sum(r.documents_seen for r in reports) == 5
    # A shard's run never deletes another shard's documents.
    assert all(r.documents_removed == 0 for r in reports)
    assert len(existing_chunks(client, settings.collection_name, 0, 1)) == 5


def test_bad_inputs_are_reported_and_not_fatal(settings: Settings, client, corpus):
    docs = corpus / "docs"
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (docs / "blank.pdf").write_bytes(text_pdf([""]))
    (docs / "image.bin").write_bytes(bytes(range(256)) * 4)
    (docs / "binary.md").write_bytes(b"# title\x00\x01\x02 binary")
    (docs / "huge.md").write_text("# Huge\n\n" + "word " * 5000)
    (docs / "manual.pdf").write_bytes(text_pdf(["Page one talks about ducks.", "Page two."]))
    report = run_ingest(settings, client, corpus, DOCS, max_bytes=20_000)
    errors = {e.source.rsplit("/", 1)[-1]: e.message for e in report.errors}
    assert "0 bytes" in errors["empty.pdf"]
    assert "unreadable PDF" in errors["broken.pdf"]
    assert "no extractable text" in errors["blank.pdf"]
    assert "unsupported file type .bin" in errors["image.bin"]
    assert "binary content" in errors["binary.md"]
    assert "over the 20000-byte limit" in errors["huge.md"]
    assert report.documents_failed == 6
    # The good documents, including the real PDF, went in; page numbers are kept.
    pages = [
        p["metadata"]
        for p in _payloads(client, settings.collection_name)
        if p["metadata"]["source"] == "docs/manual.pdf"
    ]
    assert sorted(m["page"] for m in pages) == [1, 2]
    assert pages[0]["title"] == "Test PDF"
    assert report.documents_new == 6


def test_git_and_confluence_sources(settings, client, tmp_path: Path):
    repo = tmp_path / "handbook"
    (repo / "handbook").mkdir(parents=True)
    (repo / "handbook" / "onboarding.md").write_text("# Onboarding\n\nDay one: laptops.\n")
    (repo / "src.py").write_text("print('code is not a document')\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "docs"], check=True)
    export = tmp_path / "base" / "confluence" / "SPACE"
    export.mkdir(parents=True)
    (export / "Home_123.html").write_text(
        "<html><head><title>SPACE : Home</title></head><body><div id='breadcrumbs'>x</div>"
        "<div id='main-content'><h1>Welcome</h1><p>Expenses are filed monthly.</p></div>"
        "</body></html>"
    )
    (export / "styles.css").write_text("body {}")
    config = SourcesConfig(
        [],
        [{"url": f"file://{repo}", "ref": "main", "path": "handbook"}],
        [],
        ["confluence/SPACE"],
    )
    report = run_ingest(settings, client, tmp_path / "base", config)
    assert report.errors == []
    sources = {p["metadata"]["source"]: p for p in _payloads(client, settings.collection_name)}
    assert f"file://{repo}/handbook/onboarding.md" in sources
    page = sources["confluence:SPACE/Home_123.html"]
    assert page["metadata"]["source_type"] == "confluence"
    assert "Expenses are filed monthly." in page["page_content"]
    assert "breadcrumbs" not in page["page_content"]


def test_missing_git_repository_is_reported(settings, client, tmp_path: Path):
    config = SourcesConfig([], [{"url": f"file://{tmp_path}/nope", "ref": "main"}], [], [])
    report = run_ingest(settings, client, tmp_path, config)
    assert report.errors and "git clone" in report.errors[0].message


def test_cli_prints_report(settings, tmp_path: Path, corpus, monkeypatch, capsys):
    import json

    from ingestion.__main__ import main

    (corpus / "sources.json").write_text(json.dumps({"local_dirs": ["docs"]}))
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "cli-qdrant"))
    monkeypatch.setenv("EMBEDDING_PROVIDER", "hashing")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    assert main(["--sources", str(corpus / "sources.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents_new"] == 5 and report["shard_count"] == 1
