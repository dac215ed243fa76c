"""`python -m eval`: retrieval hit@k and MRR on the golden set, and (with --judge) the
hallucination rate of generated answers judged by an LLM endpoint. JSON on stdout, so
rag-portal and CI can read it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.embeddings import make_embeddings
from app.llm import make_llm
from app.rag import RagPipeline
from app.settings import REPO_ROOT, Settings
from app.vectorstore import make_client, make_vector_store
from eval.judge import make_judge
from eval.runner import evaluate, read_golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    parser.add_argument("--golden", type=Path, default=REPO_ROOT / "eval" / "golden.jsonl")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument(
        "--judge", action="store_true", help="generate answers and judge hallucinations"
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)

    settings = Settings()
    client = make_client(settings)
    try:
        store = make_vector_store(client, settings, make_embeddings(settings))
        pipeline = RagPipeline(
            store,
            make_llm(settings),
            service=settings.service_name,
            k=args.k,
            relevance_threshold=settings.relevance_threshold,
        )
        judge_model = make_judge(settings) if args.judge else None
        result = evaluate(read_golden(args.golden), pipeline, k=args.k, judge_model=judge_model)
    finally:
        client.close()
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
