"""`python -m eval`: the golden set through the service's own retrieval (its k, ranking
and refusal threshold): hit@k and MRR on documents and on quoted passages, refusal
precision and recall; with --judge, the hallucination rate of generated answers judged
by an LLM endpoint. JSON on stdout, so rag-portal and CI can read it.

--api-url URL evaluates a running service instead of this repository's local index:
retrieval through its POST /retrieve, answers (--judge) through its POST /query.
--calibrate chooses the refusal threshold that best separates the golden set's
answerable and unanswerable questions and writes it to CALIBRATION_FILE
(app/calibration.json), which the service reads at start.

Exit code 2 when the golden set or the service cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.calibration import model_key, write_calibration
from app.embeddings import make_embeddings
from app.llm import make_llm
from app.rag import make_pipeline
from app.settings import REPO_ROOT, Settings
from app.vectorstore import make_client, make_vector_store
from eval.golden import GoldenError, GoldenItem, read_golden
from eval.judge import make_judge
from eval.metrics import calibrate_threshold
from eval.runner import ApiBackend, LocalBackend, evaluate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    parser.add_argument("--golden", type=Path, default=REPO_ROOT / "eval" / "golden.jsonl")
    parser.add_argument(
        "--judge", action="store_true", help="generate answers and judge hallucinations"
    )
    parser.add_argument(
        "--api-url", help="evaluate the service running at this URL (POST /retrieve, /query)"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="choose the refusal threshold on the golden set and write it to CALIBRATION_FILE",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    return parser.parse_args(argv)


def _local(
    settings: Settings, golden: list[GoldenItem], judge: bool, dataset: str
) -> dict[str, Any]:
    client = make_client(settings)
    try:
        store = make_vector_store(client, settings, make_embeddings(settings))
        pipeline = make_pipeline(settings, store, make_llm(settings))
        # One event loop for every generation: the chat model's async HTTP client is
        # bound to the loop it first ran on.
        with asyncio.Runner() as runner:
            return evaluate(
                golden,
                LocalBackend(pipeline, runner),
                judge_model=make_judge(settings) if judge else None,
                dataset=dataset,
            )
    finally:
        client.close()


def _remote(
    settings: Settings, url: str, golden: list[GoldenItem], judge: bool, dataset: str
) -> dict[str, Any]:
    with httpx.Client(base_url=url.rstrip("/"), timeout=settings.llm_timeout_s + 30) as http:
        return evaluate(
            golden,
            ApiBackend(http),
            judge_model=make_judge(settings) if judge else None,
            dataset=dataset,
        )


def _calibration(settings: Settings, report: dict[str, Any], golden: Path) -> dict[str, Any]:
    scores = [(row["answerable"], row["best_score"]) for row in report["per_question"]]
    threshold = calibrate_threshold(scores)
    refused_u = sum(1 for a, s in scores if not a and (s is None or s < threshold))
    refused_a = sum(1 for a, s in scores if a and (s is None or s < threshold))
    record = {
        "model": model_key(settings.embedding_provider, settings.embedding_model),
        "embedding_model": settings.embedding_model,
        "ranking": report["ranking"],
        "relevance_threshold": threshold,
        "previous_threshold": report["relevance_threshold"],
        "golden": golden.name,
        "answerable": report["answerable"],
        "unanswerable": report["unanswerable"],
        "refused_unanswerable": refused_u,
        "refused_answerable": refused_a,
        "calibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_calibration(settings.calibration_file, record)
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    try:
        golden = read_golden(args.golden)
    except GoldenError as exc:
        print(f"python -m eval: {exc}", file=sys.stderr)
        return 2
    if not golden:
        print(
            f"python -m eval: {args.golden} holds no questions; add one JSON object a line: "
            '{"question": ..., "expected_sources": [...], "quote": ...}',
            file=sys.stderr,
        )
        return 2
    try:
        if args.api_url:
            report = _remote(settings, args.api_url, golden, args.judge, args.golden.name)
        else:
            report = _local(settings, golden, args.judge, args.golden.name)
    except (httpx.HTTPError, RuntimeError) as exc:
        print(f"python -m eval: the service at {args.api_url} failed: {exc}", file=sys.stderr)
        return 2
    if args.calibrate:
        try:
            record = _calibration(settings, report, args.golden)
        except ValueError as exc:
            print(f"python -m eval --calibrate: {exc}", file=sys.stderr)
            return 2
        report["calibration"] = record
        if not args.api_url:
            # The figures at the new threshold, as the service will run with it.
            settings = Settings(relevance_threshold=record["relevance_threshold"])
            report = {
                **_local(settings, golden, args.judge, args.golden.name),
                "calibration": record,
            }
        print(
            f"relevance threshold {record['relevance_threshold']} written to "
            f"{settings.calibration_file} (was {record['previous_threshold']}); a running "
            "service reads it at its next start",
            file=sys.stderr,
        )
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
