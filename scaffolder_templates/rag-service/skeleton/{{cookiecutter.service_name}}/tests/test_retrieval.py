"""What the index holds and how it is searched: clean Markdown from HTML (identifiers not
escaped, a site's repeated navigation dropped), chunks of useful size with their heading
path, hybrid (dense + BM25) ranking, the relevance threshold and POST /retrieve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.embeddings import Embeddings
from langchain_core.runnables import RunnableLambda
from qdrant_client import QdrantClient

from app.calibration import DEFAULT_THRESHOLDS, resolve_threshold
from app.embeddings import HashingEmbeddings
from app.lexical import SPARSE_VECTOR, LexicalEncoder, LexicalIndex, coverage, terms
from app.main import create_app
from app.rag import make_pipeline
from app.settings import Settings
from app.vectorstore import make_vector_store
from ingestion.boilerplate import BoilerplateProfile
from ingestion.chunking import Chunker
from ingestion.loaders import LoadedDocument, load_html, load_markdown
from ingestion.pipeline import ingest
from ingestion.sources import SourcesConfig, enumerate_sources
from tests.conftest import run_ingest

NAV = """<div class="navheader"><table summary="Navigation header"><tr><th colspan="3">{title}</th>
</tr><tr><td><a href="{prev}.html">Prev</a></td><td><a href="index.html">Up</a></td>
<td><a href="{next}.html">Next</a></td></tr></table><hr/></div>"""
FOOT = """<div class="navfooter"><hr/><table><tr><td><a href="{prev}.html">Prev</a></td>
<td><a href="index.html">Home</a></td><td><a href="{next}.html">Next</a></td></tr><tr>
<td>{prev}</td><td></td><td>{next}</td></tr></table></div>"""


def docbook_page(name: str, body: str) -> str:
    """A page as DocBook's HTML writer makes them: navigation in ordinary div/table markup,
    no <nav>, around the content."""
    links = {"title": name, "prev": f"before-{name}", "next": f"after-{name}"}
    return (
        f"<html><head><title>{name}</title></head><body>{NAV.format(**links)}"
        f'<div class="sect1"><h2>{name}</h2>{body}</div>{FOOT.format(**links)}</body></html>'
    )


def write_site(folder: Path, pages: dict[str, str]) -> None:
    """Pages whose prose, as on a real manual's page, outweighs the navigation."""
    folder.mkdir(parents=True)
    filler = "".join(
        f"<p>Paragraph {i} of the page explains the topic in ordinary sentences.</p>"
        for i in range(4)
    )
    for name, body in pages.items():
        (folder / f"{name}.html").write_text(docbook_page(name, body + filler))


def payloads(client: QdrantClient, collection: str) -> list[dict]:
    points, _ = client.scroll(collection, limit=10_000, with_payload=True)
    return [p.payload for p in points]


def test_html_keeps_identifiers_and_normalises_titles():
    html = (
        "<html><head><title>pg_dump\u00a0\u2014 backups</title></head><body>"
        "<p>Run <code>pg_dump</code> with <em>deadlock_timeout</em> and SELECT * FROM t;"
        " 2 * 3 = 6.</p></body></html>"
    )
    document = load_html(html.encode(), "docs/pg.html").documents[0]
    assert document.title == "pg_dump \u2014 backups"
    assert "pg_dump" in document.text and "deadlock_timeout" in document.text
    assert "\\_" not in document.text and "\\*" not in document.text
    assert "SELECT * FROM t" in document.text and "\u00a0" not in document.text


def test_html_chrome_scripts_and_icon_titles_never_reach_the_text_or_the_title():
    html = (
        "<html><body><svg><title>icon</title></svg>"
        "<div role='navigation'>Menu Home Search</div>"
        "<noscript><script>track()</script></noscript><script>draw()</script>"
        "<h1>Backups</h1><p>Run pg_dump nightly.</p>"
        "<footer>Copyright notice</footer></body></html>"
    )
    loaded = load_html(html.encode(), "docs/backups.html")
    document = loaded.documents[0]
    assert document.title == "Backups"  # not the icon's <title>
    assert "pg_dump nightly" in document.text
    for chrome in ("Menu", "track", "draw", "Copyright", "icon"):
        assert chrome not in document.text
    assert loaded.warnings == ["removed 2 <script> element(s)"]


def test_markdown_front_matter_gives_the_title_and_is_not_indexed():
    text = '---\ntitle: "docker run"\nkeywords: "run, container"\n---\n\n# run\n\nRuns it.\n'
    document = load_markdown(text.encode(), "docs/run.md").documents[0]
    assert document.title == "docker run"
    assert "keywords" not in document.text and document.text.lstrip().startswith("# run")


def test_navigation_repeated_across_a_site_is_not_indexed(settings, client, tmp_path: Path):
    bodies = {
        "backup": "<p>Take a base backup with pg_basebackup while the server runs.</p>",
        "vacuum": "<p>VACUUM reclaims storage occupied by dead tuples.</p>",
        "locks": "<p>The deadlock_timeout setting is one second by default.</p>",
        "wal": "<p>Write-ahead logging makes commits durable before data pages.</p>",
    }
    write_site(tmp_path / "manual", bodies)
    report = run_ingest(settings, client, tmp_path, SourcesConfig(["manual"], [], [], []))
    assert report.errors == []
    texts = [p["page_content"] for p in payloads(client, settings.collection_name)]
    assert len(texts) == len(bodies)
    for text in texts:
        assert "Prev" not in text and "Next" not in text and "before-" not in text
    joined = "\n".join(texts)
    assert all(body[3:-4] in joined for body in bodies.values())  # the content stays


SPHINX = """<html><head><title>{name}</title></head><body>
<div class="related"><h3>Navigation</h3><ul><li><a href="genindex.html">index</a></li>
<li><a href="next.html">next</a> |</li><li><a href="{name}.html">{name}</a> &#187;</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body">
<section id="{name}"><h1>{name} module</h1>{body}</section></div></div></div>
<div class="sphinxsidebar"><h3>Table of Contents</h3><ul><li><a href="#a">{name} intro</a></li>
</ul><h4>Previous topic</h4><p><a href="p.html">prev</a></p></div></div>
<div class="footer">&copy; Copyright 2001-2023, the authors. Last updated on Mar 01.</div>
</body></html>"""


def test_sidebars_and_footers_go_even_from_short_pages():
    """Sphinx's layout (related bars, a sidebar inside the document wrapper, a footer):
    learnt on the site's pages, stripped from a stub too, where no content root stands
    out."""
    prose = "".join(
        f"<p>Paragraph {i} explains the module's functions and arguments in sentences.</p>"
        for i in range(8)
    )
    pages = [SPHINX.format(name=n, body=prose) for n in ("json", "csv", "os", "sys")]
    profile = BoilerplateProfile.learn(pages)
    stub = SPHINX.format(name="stub", body="<p>Only this.</p>").encode()
    text = load_html(stub, "docs/stub.html", boilerplate=profile).documents[0].text
    assert "Only this." in text and "stub module" in text
    for chrome in ("Navigation", "Table of Contents", "Previous topic", "Copyright"):
        assert chrome not in text
    assert "Navigation" in load_html(stub, "docs/stub.html").documents[0].text


def test_a_lone_page_keeps_its_tables(tmp_path: Path):
    """One page is no site: nothing is dropped on a guess."""
    page = docbook_page("single", "<p>Only page.</p>").encode()
    text = load_html(page, "docs/single.html").documents[0].text
    assert "Only page." in text and "Prev" in text


def test_small_sections_are_merged_with_their_heading_path():
    sections = "\n\n".join(f"## Option {i}\n\nSets value {i} of the server." for i in range(12))
    document = LoadedDocument("docs/conf.md", "Server configuration", sections, "markdown")
    chunks = Chunker(400, 60).split([document], "local")
    assert 2 <= len(chunks) <= 4  # twelve tiny sections, not twelve tiny chunks
    assert all(len(c.text) <= 400 + 80 for c in chunks)
    assert all(len(c.text) >= 150 for c in chunks[:-1])
    first = chunks[0]
    assert first.metadata["section"] == "Server configuration > Option 0"
    assert first.text.startswith("Server configuration > Option 0\n\n## Option 0")
    assert first.metadata["headings"][:2] == [
        "Server configuration > Option 0",
        "Server configuration > Option 1",
    ]
    # Every section's text is in exactly one chunk.
    for i in range(12):
        assert sum(f"Sets value {i} of" in c.text for c in chunks) == 1


def test_a_long_section_is_split_and_each_part_keeps_its_path():
    long = "# Guide\n\n## Install\n\n" + "\n\n".join(
        f"Step {i}: run the installer and check the log." for i in range(40)
    )
    chunks = Chunker(300, 50).split(
        [LoadedDocument("docs/g.md", "Guide", long, "markdown")], "local"
    )
    assert len(chunks) > 3
    assert all(c.text.startswith("Guide > Install\n\n") for c in chunks)
    assert all(c.metadata["section"] == "Guide > Install" for c in chunks)
    # Inline HTML and links in headings do not reach the heading path.
    linked = '# T\n\n## <a name="ip"></a> Set the `--ip` ([docs](ip.md))\n\ntext'
    chunk = Chunker(800, 50).split([LoadedDocument("d.md", "T", linked, "markdown")], "x")[0]
    assert chunk.metadata["headings"] == ["T > Set the --ip (docs)"]
    # Headings inside fenced code are code, not sections.
    fenced = "# T\n\n```\n# not a heading\n```\n\n## Real\n\ntext"
    chunk = Chunker(800, 50).split([LoadedDocument("d.md", "T", fenced, "markdown")], "x")[0]
    assert chunk.metadata["headings"] == ["T", "T > Real"]


def test_lexical_terms_keep_identifiers_whole_and_in_parts():
    found = terms("Set deadlock_timeout and --read-only for the containers")
    assert {"deadlock_timeout", "deadlock", "timeout", "read-only", "read", "onli"} <= set(found)
    assert "the" not in found and "for" not in found
    # Stemmed: a question's "asking" finds a page's "ask", "containers" its "container".
    assert terms("containers") == terms("container")
    assert terms("How do I ask?") == terms("Asking a question")[:1] == terms("asked")
    encoder = LexicalEncoder(800)
    query = encoder.query("deadlock timeout")
    document = encoder.document("deadlock_timeout is one second")
    assert set(query.indices) <= set(document.indices)


def test_passage_coverage_is_the_best_pair_of_lines():
    asked = set(terms("mount the root filesystem read-only"))
    together = "Options:\n  --read-only  Mount the container's root filesystem as read only\n"
    apart = "Mount a volume.\n\nThe root user.\n\nA filesystem.\n\nA read-only flag."
    assert coverage(asked, together) == (1.0, 1.0)
    # Six terms (mount, root, filesystem, read-only, read, only); the best two lines hold
    # four: "A filesystem." and "A read-only flag.".
    whole, passage = coverage(asked, apart)
    assert whole == 1.0 and passage == pytest.approx(4 / 6)
    assert coverage(set(), "anything") == (1.0, 1.0)


def test_the_in_memory_bm25_index_scores_as_qdrant_does(settings, indexed):
    """Local mode searches BM25 from memory (LexicalIndex): the same points and scores as
    Qdrant's own sparse search with its IDF modifier."""
    index = LexicalIndex.load(indexed, settings.collection_name)
    encoder = LexicalEncoder(settings.chunk_size)
    for question in ("rotate the Qdrant API key", "JOB_COMPLETION_INDEX shard", "vLLM LoRA"):
        query = encoder.query(question)
        expected = indexed.query_points(
            settings.collection_name, query=query, using=SPARSE_VECTOR, limit=5
        ).points
        found = index.search(query, 5)
        assert [p.id for p in found] == [p.id for p in expected], question
        assert [p.score for p in found] == pytest.approx([p.score for p in expected], rel=1e-4)
    assert index.search(encoder.query("zebra"), 5) == []


class SameVector(Embeddings):
    """Every text gets the same vector: the dense search cannot tell chunks apart."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 383 for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0] + [0.0] * 383


def test_hybrid_ranking_finds_what_the_embedding_cannot(settings, client, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"page{i:02d}.md").write_text(f"# Page {i}\n\nGeneral text number {i}.")
    (docs / "wal.md").write_text("# WAL\n\nThe max_wal_size setting bounds checkpoints.")
    items, problems = enumerate_sources(
        SourcesConfig(["docs"], [], [], []),
        base_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        max_bytes=10**6,
    )
    ingest(
        items,
        problems,
        client=client,
        collection=settings.collection_name,
        embeddings=SameVector(),
        dimension=384,
        chunker=Chunker(settings.chunk_size, settings.chunk_overlap),
    )
    store = make_vector_store(client, settings, SameVector())
    question = "What does max_wal_size bound?"
    hybrid = make_pipeline(settings, store, RunnableLambda(lambda _: ""))
    assert hybrid.ranking == "hybrid"
    assert hybrid.retrieve(question)[0].document.metadata["source"] == "docs/wal.md"
    # Relevance is the mean of similarity and term coverage: with every chunk as similar as
    # the next, only the chunk holding the question's terms clears a threshold of 0.75
    # (the top k are then the context), and a question no chunk's terms match is refused.
    settings.relevance_threshold = 0.75
    strict = make_pipeline(settings, store, RunnableLambda(lambda _: ""))
    found = strict.search(question)
    passing = [c.document.metadata["source"] for c in found.ranked if c.score >= 0.75]
    assert passing == ["docs/wal.md"] and found.kept == found.ranked
    top = found.ranked[0]
    assert top.similarity == pytest.approx(1.0) and top.coverage == 1.0
    assert top.score == pytest.approx((top.similarity + top.coverage) / 2)
    assert strict.retrieve("Who painted the Mona Lisa?") == []
    settings.retrieval_ranking = "dense"
    dense = make_pipeline(settings, store, RunnableLambda(lambda _: ""))
    # The embedding alone scores every chunk alike: it has no way to rank the WAL page.
    assert dense.ranking == "dense"
    assert {round(c.similarity, 6) for c in dense.search(question).ranked} == {1.0}


class OptionsLookLessSimilar(Embeddings):
    """The question and most chunks get one vector; a chunk holding "--read-only" gets a
    slightly different one (cosine 0.9): the embedding ranks it below the others."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        if "--read-only" in text:
            return [0.9, (1 - 0.81) ** 0.5] + [0.0] * 382
        return [1.0] + [0.0] * 383


def test_hybrid_prefers_the_chunk_that_states_the_answer_in_one_place(
    settings, client, tmp_path: Path
):
    """Two pages hold every term of the question; one says it in one line (an option and
    its description), the other in words scattered over the page. The embedding prefers
    the scattered page; the re-ranking's passage coverage puts the option first."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scattered.md").write_text(
        "# Notes\n\nMount it.\n\nThe root user.\n\nSome text.\n\nA filesystem.\n\n"
        "More text.\n\nA read-only volume.\n"
    )
    (docs / "options.md").write_text(
        "# Options\n\n--read-only  Mount the container's root filesystem as read only\n"
    )
    items, problems = enumerate_sources(
        SourcesConfig(["docs"], [], [], []),
        base_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        max_bytes=10**6,
    )
    embeddings = OptionsLookLessSimilar()
    ingest(
        items,
        problems,
        client=client,
        collection=settings.collection_name,
        embeddings=embeddings,
        dimension=384,
        chunker=Chunker(settings.chunk_size, settings.chunk_overlap),
    )
    store = make_vector_store(client, settings, embeddings)
    question = "How do I mount the root filesystem read-only?"
    found = make_pipeline(settings, store, RunnableLambda(lambda _: "")).search(question)
    assert [c.document.metadata["source"] for c in found.ranked] == [
        "docs/options.md",
        "docs/scattered.md",
    ]
    assert [c.coverage for c in found.ranked] == [1.0, 1.0]
    assert found.ranked[0].similarity == pytest.approx(0.9)
    settings.retrieval_ranking = "dense"
    dense = make_pipeline(settings, store, RunnableLambda(lambda _: "")).search(question)
    assert dense.ranked[0].document.metadata["source"] == "docs/scattered.md"


def test_a_new_lexical_analyzer_rewrites_every_chunk(settings, client, tmp_path: Path, monkeypatch):
    """BM25 vectors written by another analyzer would not match the API's question terms:
    the analyzer is part of each chunk's id, so the next ingestion rewrites them all."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nFirst page.")
    (docs / "b.md").write_text("# B\n\nSecond page.")

    def run() -> dict:
        items, problems = enumerate_sources(
            SourcesConfig(["docs"], [], [], []),
            base_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            max_bytes=10**6,
        )
        return ingest(
            items,
            problems,
            client=client,
            collection=settings.collection_name,
            embeddings=HashingEmbeddings(384),
            dimension=384,
            chunker=Chunker(settings.chunk_size, settings.chunk_overlap),
        ).to_dict()

    first = run()
    assert first["chunks_added"] == 2 and run()["chunks_unchanged"] == 2
    monkeypatch.setattr("ingestion.chunking.ANALYZER", "another-analyzer")
    rewritten = run()
    assert rewritten["chunks_updated"] == 2 and rewritten["chunks_unchanged"] == 0
    assert client.count(settings.collection_name).count == 2


def test_threshold_comes_from_env_then_calibration_then_model_default(tmp_path: Path):
    calibration = tmp_path / "calibration.json"
    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_threshold("local", minilm, "hybrid", calibration) == (
        DEFAULT_THRESHOLDS["all-minilm-l6-v2"],
        "default for all-minilm-l6-v2",
    )
    calibration.write_text(
        json.dumps({"model": "all-minilm-l6-v2", "ranking": "hybrid", "relevance_threshold": 0.5})
    )
    assert resolve_threshold("local", minilm, "hybrid", calibration)[0] == 0.5
    # Calibrated for another ranking or model: not this one's threshold.
    assert resolve_threshold("local", minilm, "dense", calibration)[0] != 0.5
    assert resolve_threshold("local", "BAAI/bge-small-en-v1.5", "hybrid", calibration)[0] != 0.5
    settings = Settings(_env_file=None, calibration_file=calibration)
    assert settings.relevance_threshold == 0.5 and settings.threshold_origin.startswith("calib")
    empty = Settings(_env_file=None, calibration_file=calibration, relevance_threshold="")
    assert empty.relevance_threshold == 0.5  # RELEVANCE_THRESHOLD= is "not set"
    explicit = Settings(_env_file=None, calibration_file=calibration, relevance_threshold=0.7)
    assert (
        explicit.relevance_threshold == 0.7 and explicit.threshold_origin == "RELEVANCE_THRESHOLD"
    )


def test_retrieve_returns_ranked_passages_without_llm_or_usage(settings, indexed):
    def must_not_be_called(_):
        raise AssertionError("/retrieve must not call the LLM")

    app = create_app(
        settings,
        llm=RunnableLambda(must_not_be_called),
        embeddings=HashingEmbeddings(),
        client=indexed,
    )
    with TestClient(app) as api:
        body = api.post(
            "/retrieve", json={"question": "How do I rotate the Qdrant API key?"}
        ).json()
        assert body["refused"] is False and body["ranking"] == "hybrid"
        assert (
            body["k"] == settings.retrieval_k and body["threshold"] == settings.relevance_threshold
        )
        top = body["chunks"][0]
        assert top["source"] == "docs/operations/runbook.md"
        assert "Secret version" in top["text"] and top["score"] >= settings.relevance_threshold
        # The top k are the context once the best of them reaches the threshold.
        assert len(body["chunks"]) == settings.retrieval_k
        assert body["best_score"] == max(c["score"] for c in body["chunks"])
        for chunk in body["chunks"]:
            mean = (chunk["similarity"] + chunk["coverage"]) / 2
            assert chunk["score"] == pytest.approx(mean, abs=1e-4)
        nothing = api.post("/retrieve", json={"question": "zebra pineapple quantum"}).json()
        assert nothing["refused"] is True and nothing["chunks"] == []
        assert api.post("/retrieve", json={"question": "  "}).status_code == 422
        metrics = api.get("/metrics").text
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(("rag_requests_total{", "rag_no_context_answers_total "))
    ]
    assert sum(counted) == 0, metrics
