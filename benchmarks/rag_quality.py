"""Answer quality of a repository rendered from scaffolder_templates/rag-service, measured
from outside it on two public corpora that ship as Debian packages, with golden sets
written for them (benchmarks/rag_quality/*.jsonl):

- postgresql: 98 HTML pages of the PostgreSQL 15 manual (Debian `postgresql-doc-15`,
  DocBook HTML with "Prev | Up | Next" navigation tables): the server administration
  chapters and the client/server applications reference;
- docker: 154 Markdown pages of the Docker reference (Debian `docker-doc`: Dockerfile
  reference, `docker run`, every CLI command, plugins; Jekyll front matter).

Each golden set holds 40+ answerable questions, each with the page that answers it and
the exact passage (`quote`), and unanswerable questions (`expected_sources: []`). The
ranking's weights were chosen on these; `<corpus>-holdout.jsonl` holds 15 more per corpus
(12 answerable, 3 not), written before any of those choices and never tuned on: their
figures are reported apart, as the check against fitting the golden sets.

For each corpus the rendered repository (form defaults; the sample documents removed)
runs its own `python -m ingestion` over the pages, then its own RAG pipeline
(`create_app(...).state.rag.pipeline.retrieve`, the service's k, threshold and ranking)
answers every question, and its API (`uvicorn app.main:app`, a zero-latency stub LLM)
is timed over HTTP. Figures, per corpus:

- right page in the top k, the chunk holding the passage in the top k;
- unanswerable questions refused, answerable questions wrongly refused;
- POST /query minus the LLM, p50 / p95 (Qdrant local mode, the corpus' chunks);
- ingestion: seconds, chunks, time outside the embedding calls (goal <= 10 %).

`--rev REV` renders the skeleton as it was at a git revision (the "before" figures;
`--rev REV --rev WORKTREE` measures both in one run, their APIs timed side by side);
the same golden sets and the same scoring apply. The corpora are fetched with
`apt-get download` (the Debian archive, nothing else) into build/rag-quality/ once.

Run: .venv/bin/python benchmarks/rag_quality.py [--corpora postgresql,docker] [--rev REV ...]
     [--passes 3] [--set NAME=VALUE ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rag_service import (  # noqa: E402  (a sibling benchmark script, not a package)
    STUB_LLM,
    VENV_PYTHON,
    _start,
    _stop,
    _wait_up,
    free_port,
    load_average,
    p95,
)

CACHE = ROOT / "build" / "rag-quality"
SKELETON = Path("scaffolder_templates") / "rag-service" / "skeleton"
PG_PAGES = re.compile(
    r"^(app-|runtime|auth-|client-auth|backup|continuous-archiving|routine-|maintenance|"
    r"monitoring|wal|server-|kernel-|upgrading|ssl-tcp|preventing-server|encryption|"
    r"logfile-maint|high-availability|warm-standby|hot-standby|different-replication)"
    r".*\.html$"
)
CORPORA = {
    "postgresql": {
        "package": "postgresql-doc-15",
        "root": "usr/share/doc/postgresql-doc-15/html",
        "kind": "HTML",
    },
    "docker": {
        "package": "docker-doc",
        "root": "usr/share/doc/docker-doc",
        "kind": "Markdown",
    },
}


def _selected(corpus: str, root: Path) -> list[Path]:
    if corpus == "postgresql":
        return sorted(p for p in root.iterdir() if PG_PAGES.match(p.name))
    pages = [p for p in (root / "reference").rglob("*") if ".md" in p.suffixes]
    pages += [p for p in (root / "extend").rglob("*") if ".md" in p.suffixes]
    pages += [p for p in root.glob("deprecated.md*")]
    return sorted(pages)


def prepare_corpus(corpus: str) -> Path:
    """The corpus pages in build/rag-quality/<corpus>/docs, from the Debian package."""
    spec = CORPORA[corpus]
    target = CACHE / corpus / "docs"
    if target.is_dir() and any(target.rglob("*")):
        return target
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{spec['package']}_*.deb")):
        command = ["apt-get", "download", "-q", spec["package"]]
        subprocess.run(command, cwd=debs, check=True, capture_output=True)
    deb = sorted(debs.glob(f"{spec['package']}_*.deb"))[-1]
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["dpkg-deb", "-x", str(deb), scratch], check=True)
        root = Path(scratch) / spec["root"]
        for page in _selected(corpus, root):
            relative = page.relative_to(root)
            out = target / (str(relative)[: -len(".gz")] if page.suffix == ".gz" else relative)
            out.parent.mkdir(parents=True, exist_ok=True)
            data = page.read_bytes()
            out.write_bytes(gzip.decompress(data) if page.suffix == ".gz" else data)
    (CACHE / corpus / "package.txt").write_text(deb.name + "\n")
    return target


def render(out: Path, rev: str | None) -> Path:
    """The skeleton at `rev` (or the working tree), rendered with the form defaults."""
    from cookiecutter.main import cookiecutter

    skeleton = ROOT / SKELETON
    if rev:
        source = out / "skeleton-src"
        source.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", rev, str(SKELETON)], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        skeleton = source / SKELETON
    return Path(
        cookiecutter(
            str(skeleton),
            no_input=True,
            output_dir=str(out),
            extra_context={"service_name": "quality-bench"},
        )
    )


def install_corpus(repo: Path, pages: Path, golden: Path) -> None:
    """The corpus replaces the repository's documents; sources.json lists docs/ only."""
    shutil.rmtree(repo / "docs", ignore_errors=True)
    shutil.copytree(pages, repo / "docs")
    (repo / "sources.json").write_text(json.dumps({"local_dirs": ["docs"]}))
    shutil.copy(golden, repo / "eval" / "golden.jsonl")


def _env(repo: Path, work: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "QDRANT_PATH": str(work / "qdrant"),
        "ONNX_CACHE_DIR": str(work / "onnx-cache"),
        "RAGPORTAL_URL": "",
        **(extra or {}),
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def run_ingestion(repo: Path, work: Path, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [str(VENV_PYTHON), "-m", "ingestion", "--json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"ingestion failed:\n{out.stderr[-4000:]}")
    report = json.loads(out.stdout)
    report["wall_s"] = wall
    return report


# ---------------------------------------------------------------- scoring (inner) ---


def tokens(text: str) -> str:
    """Words only: Markdown markup, escapes and line breaks do not decide a match."""
    return " ".join(re.findall(r"[a-z0-9_%]+", text.replace("\\", "").lower()))


def source_matches(source: str, expected: list[str]) -> bool:
    return any(source == e or source.endswith("/" + e) for e in expected)


def inner_retrieval(repo: Path, golden: Path) -> dict:
    """Every golden question through the service's own pipeline (k, threshold, ranking
    as the API runs them)."""
    sys.path.insert(0, str(repo))
    from app.main import create_app
    from app.settings import Settings
    from fastapi.testclient import TestClient
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    rows = read_golden(golden)
    settings = Settings(_env_file=None)
    app = create_app(settings, llm=FakeListChatModel(responses=["stub"]))
    per_question = []
    with TestClient(app):
        pipeline = app.state.rag.pipeline
        for row in rows:
            started = time.perf_counter()
            if hasattr(pipeline, "search"):  # the best score before the threshold, too
                found = pipeline.search(row["question"])
                chunks, best = found.kept, found.best_score
            else:  # a skeleton from before hybrid ranking
                chunks, best = pipeline.retrieve(row["question"]), None
            retrieve_ms = (time.perf_counter() - started) * 1000
            expected = row["expected_sources"]
            quote = tokens(row.get("quote", ""))
            top = [(c.document.metadata.get("source", ""), c.document.page_content) for c in chunks]
            page_rank = next(
                (i for i, (s, _) in enumerate(top, 1) if source_matches(s, expected)), None
            )
            passage_rank = next(
                (
                    i
                    for i, (s, text) in enumerate(top, 1)
                    if source_matches(s, expected) and quote and quote in tokens(text)
                ),
                None,
            )
            per_question.append(
                {
                    "set": row.get("set", "tuning"),
                    "question": row["question"],
                    "answerable": bool(expected),
                    "refused": not chunks,
                    "page_rank": page_rank,
                    "passage_rank": passage_rank,
                    "scores": [round(float(c.score), 4) for c in chunks],
                    "best_score": best,
                    "sources": [s for s, _ in top],
                    "retrieve_ms": retrieve_ms,
                }
            )
    k = getattr(pipeline, "k", settings.retrieval_k)
    threshold = getattr(pipeline, "relevance_threshold", settings.relevance_threshold)
    ranking = getattr(pipeline, "ranking", "dense")
    return {"k": k, "threshold": threshold, "ranking": ranking, "per_question": per_question}


def inner_unfiltered(repo: Path, golden: Path) -> dict:
    """The best dense score of every question with no threshold (what calibration sees)."""
    sys.path.insert(0, str(repo))
    from app.embeddings import make_embeddings
    from app.settings import Settings
    from app.vectorstore import make_client, make_vector_store

    settings = Settings(_env_file=None)
    client = make_client(settings)
    store = make_vector_store(client, settings, make_embeddings(settings))
    rows = [json.loads(line) for line in golden.read_text().splitlines() if line.strip()]
    best = []
    for row in rows:
        hits = store.similarity_search_with_score(row["question"], k=1)
        best.append(
            {"answerable": bool(row["expected_sources"]), "best": hits[0][1] if hits else 0}
        )
    client.close()
    return {"best": best}


def read_golden(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(result: dict, which: str = "tuning") -> dict:
    rows = [r for r in result["per_question"] if r.get("set", "tuning") == which]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "k": result["k"],
        "threshold": result["threshold"],
        "ranking": result["ranking"],
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "page_hits": sum(1 for r in answerable if r["page_rank"] is not None),
        "passage_hits": sum(1 for r in answerable if r["passage_rank"] is not None),
        "refused_unanswerable": sum(1 for r in unanswerable if r["refused"]),
        "refused_answerable": sum(1 for r in answerable if r["refused"]),
        "page_mrr": statistics.mean(
            1 / r["page_rank"] if r["page_rank"] else 0 for r in answerable
        ),
        "passage_mrr": statistics.mean(
            1 / r["passage_rank"] if r["passage_rank"] else 0 for r in answerable
        ),
    }


# ------------------------------------------------------------------ latency (outer) ---


def measure_query(
    apis: list[tuple[Path, Path, dict[str, str]]], golden: Path, passes: int
) -> list[dict]:
    """POST /query of each API (repo, work folder, environment) in its own process
    (uvicorn), one zero-latency stub LLM for all. The APIs run side by side and take the
    questions in turn (A, B, B, A, ...), so a load spike on the shared machine falls on
    both alike: their figures compare."""
    import httpx

    questions = [
        json.loads(line)["question"] for line in golden.read_text().splitlines() if line.strip()
    ]
    work = apis[0][1]
    stub_port = free_port()
    (work / "stub_llm.py").write_text(STUB_LLM)
    stub = _start(
        ["-m", "uvicorn", "stub_llm:app", "--port", str(stub_port), "--lifespan", "off",
         "--log-level", "warning", "--no-access-log"],
        work, {}, work / "stub.log",
    )  # fmt: skip
    started_apis: list[tuple[subprocess.Popen, int]] = []
    try:
        _wait_up(f"http://127.0.0.1:{stub_port}/v1/models", stub, work / "stub.log")
        for repo, api_work, env in apis:
            port = free_port()
            api_env = {
                **env,
                "LLM_BASE_URL": f"http://127.0.0.1:{stub_port}/v1",
                "FALLBACK_LLM_BASE_URL": "",
                "LLM_MODEL": "stub",
            }
            log = api_work / "api.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [str(VENV_PYTHON), "-m", "uvicorn", "app.main:app", "--port", str(port),
                     "--log-level", "warning", "--no-access-log"],
                    cwd=repo, env=api_env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            started_apis.append((process, port))
            _wait_up(f"http://127.0.0.1:{port}/healthz", process, log, seconds=600)
        clients = [
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            for _, port in started_apis
        ]
        latencies: list[list[float]] = [[] for _ in clients]
        for http in clients:
            for question in questions[:5]:  # warm-up
                http.post("/query", json={"question": question}).raise_for_status()
        turn = 0
        for _ in range(passes):
            for question in questions:
                order = list(range(len(clients)))
                if turn % 2:
                    order.reverse()
                turn += 1
                for i in order:
                    started = time.perf_counter()
                    clients[i].post("/query", json={"question": question}).raise_for_status()
                    latencies[i].append((time.perf_counter() - started) * 1000)
        for http in clients:
            http.close()
    finally:
        for process, _ in started_apis:
            _stop(process)
        _stop(stub)
    return [
        {"requests": len(lat), "p50_ms": statistics.median(lat), "p95_ms": p95(lat)}
        for lat in latencies
    ]


def run_inner(repo: Path, env: dict[str, str], part: str, golden: Path) -> dict:
    out = subprocess.run(
        [str(VENV_PYTHON), __file__, "--inner", part, "--repo", str(repo), "--golden", str(golden)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )
    if out.returncode != 0:
        sys.exit(f"{part} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_eval(repo: Path, env: dict[str, str]) -> dict | None:
    """The repository's own `python -m eval` (None when it cannot score this golden set)."""
    out = subprocess.run(
        [str(VENV_PYTHON), "-m", "eval"], cwd=repo, env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        return None
    report = json.loads(out.stdout)
    report.pop("per_question", None)
    return report


def measure_corpus(
    corpus: str,
    revs: list[str | None],
    passes: int,
    settings: dict[str, str],
    keep: bool = False,
) -> list[dict]:
    """The corpus through a repository rendered at each revision (None: the working
    tree): ingestion and retrieval one after the other, then their APIs timed together."""
    pages = prepare_corpus(corpus)
    golden = HERE / "rag_quality" / f"{corpus}.jsonl"
    holdout = HERE / "rag_quality" / f"{corpus}-holdout.jsonl"
    results, apis = [], []
    for rev in revs:
        work = Path(tempfile.mkdtemp(prefix=f"rag-quality-{corpus}-"))
        repo = render(work / "render", rev)
        install_corpus(repo, pages, golden)
        env = _env(repo, work, settings)
        ingestion = run_ingestion(repo, work, env)
        both = work / "golden-and-holdout.jsonl"
        both.write_text(
            "".join(
                json.dumps({**row, "set": name}) + "\n"
                for name, path in (("tuning", golden), ("held-out", holdout))
                if path.exists()
                for row in read_golden(path)
            )
        )
        retrieval = run_inner(repo, env, "retrieval", both)
        unfiltered = run_inner(repo, env, "unfiltered", golden)
        own_eval = run_eval(repo, env)
        apis.append((repo, work, env))
        chunks = ingestion["chunks_added"] + ingestion["chunks_unchanged"]
        outside = ingestion["seconds"] - ingestion["embedding_seconds"]
        results.append(
            {
                "corpus": corpus,
                "rev": rev or "working tree",
                "package": (CACHE / corpus / "package.txt").read_text().strip(),
                "pages": ingestion["documents_seen"],
                "chunks": chunks,
                "ingestion_s": ingestion["seconds"],
                "embedding_s": ingestion["embedding_seconds"],
                "outside_embedding_pct": 100 * outside / max(ingestion["embedding_seconds"], 1e-9),
                **summarize(retrieval),
                "held_out": summarize(retrieval, "held-out") if holdout.exists() else None,
                "best_scores": unfiltered["best"],
                "own_eval": own_eval,
                "per_question": retrieval["per_question"],
            }
        )
    print(f"{corpus}: load average before timing {load_average()}", file=sys.stderr)
    for result, latency in zip(results, measure_query(apis, golden, passes), strict=True):
        result.update(
            query_p50_ms=latency["p50_ms"],
            query_p95_ms=latency["p95_ms"],
            requests=latency["requests"],
            load_after=load_average(),
        )
    for _, work, _ in apis:
        if keep:
            print(f"{corpus}: rendered repository and index kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: list[dict], label: str) -> str:
    lines = [
        f"| figure {label} | " + " | ".join(f"{r['corpus']} ({r['rev']})" for r in results) + " |",
        "| --- |" + " --- |" * len(results),
    ]

    def row(name: str, cell) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")

    row("corpus", lambda r: f"{r['pages']} pages, {r['chunks']} chunks ({r['package']})")
    row("k / threshold / ranking", lambda r: f"{r['k']} / {r['threshold']} / {r['ranking']}")
    row(
        "right page in the top k",
        lambda r: f"{r['page_hits']}/{r['answerable']} ({r['page_hits'] / r['answerable']:.2f})",
    )
    row(
        "chunk holding the passage in the top k",
        lambda r: (
            f"{r['passage_hits']}/{r['answerable']} ({r['passage_hits'] / r['answerable']:.2f})"
        ),
    )
    row("unanswerable refused", lambda r: f"{r['refused_unanswerable']}/{r['unanswerable']}")
    row("answerable wrongly refused", lambda r: f"{r['refused_answerable']}/{r['answerable']}")
    row("MRR page / passage", lambda r: f"{r['page_mrr']:.3f} / {r['passage_mrr']:.3f}")

    def held_out(r: dict) -> str:
        h = r.get("held_out")
        if not h:
            return "-"
        return (
            f"page {h['page_hits']}/{h['answerable']}, passage {h['passage_hits']}/"
            f"{h['answerable']}, refused {h['refused_unanswerable']}/{h['unanswerable']} "
            f"unanswerable, {h['refused_answerable']}/{h['answerable']} answerable"
        )

    row("held-out questions (not tuned on)", held_out)
    row(
        "/query minus LLM, p50 / p95",
        lambda r: f"{r['query_p50_ms']:.1f} / {r['query_p95_ms']:.1f} ms ({r['requests']} req.)",
    )
    row(
        "ingestion (time outside embedding)",
        lambda r: f"{r['ingestion_s']:.0f} s ({r['outside_embedding_pct']:.1f} %)",
    )
    row("load average after timing", lambda r: r["load_after"])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpora", default="postgresql,docker")
    parser.add_argument(
        "--rev",
        action="append",
        default=[],
        help="render the skeleton as it was at this git revision (repeatable; WORKTREE for "
        "the working tree); several revisions are timed side by side. Default: WORKTREE",
    )
    parser.add_argument("--passes", type=int, default=3, help="timed passes over the questions")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the service (environment variable), e.g. RETRIEVAL_RANKING=dense",
    )
    parser.add_argument("--json", type=Path, help="also write the full results here")
    parser.add_argument("--keep", action="store_true", help="keep the rendered repos and indexes")
    parser.add_argument("--inner", choices=["retrieval", "unfiltered"])
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--golden", type=Path)
    args = parser.parse_args()
    if args.inner == "retrieval":
        print(json.dumps(inner_retrieval(args.repo, args.golden)))
        return
    if args.inner == "unfiltered":
        print(json.dumps(inner_unfiltered(args.repo, args.golden)))
        return
    revs = [None if r == "WORKTREE" else r for r in args.rev] or [None]
    settings = dict(item.split("=", 1) for item in args.set)
    results = []
    for corpus in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        print(f"{corpus}: load average before {load_average()}", file=sys.stderr)
        results += measure_corpus(corpus, revs, args.passes, settings, args.keep)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    for r in results:
        best = r["best_scores"]
        for kind in (True, False):
            scores = sorted(b["best"] for b in best if b["answerable"] is kind)
            name = "answerable" if kind else "unanswerable"
            print(
                f"{r['corpus']} ({r['rev']}): best score, {name}: min {scores[0]:.3f} "
                f"median {statistics.median(scores):.3f} max {scores[-1]:.3f}",
                file=sys.stderr,
            )
        if r["own_eval"] is not None:
            print(
                f"{r['corpus']} ({r['rev']}): python -m eval: {json.dumps(r['own_eval'])}",
                file=sys.stderr,
            )
    print(table(results, " ".join(args.set)))


if __name__ == "__main__":
    main()
