"""`python -m ingestion`: sync the configured sources into the vector store.

Sharding for a Kubernetes Indexed Job: --shard-index defaults to JOB_COMPLETION_INDEX,
--shard-count to INGESTION_SHARDS. Exit code 0 even when some documents failed (they
are in the report); 2 when the run itself could not happen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from openai import APIError
from rich.console import Console
from rich.table import Table

from app.embeddings import embedding_dimension, make_embeddings
from app.settings import REPO_ROOT, Settings
from app.vectorstore import CollectionMismatch, make_client
from ingestion.chunking import Chunker
from ingestion.pipeline import IngestionReport, ingest
from ingestion.sources import SourcesConfig, enumerate_sources


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingestion", description=__doc__)
    parser.add_argument("--sources", type=Path, help="sources file (default: SOURCES_FILE)")
    parser.add_argument(
        "--shard-index", type=int, default=int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    )
    parser.add_argument(
        "--shard-count", type=int, default=int(os.environ.get("INGESTION_SHARDS", "1"))
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.shard_count < 1 or not 0 <= args.shard_index < args.shard_count:
        parser.error(
            f"--shard-index must be in [0, {args.shard_count}) and --shard-count >= 1; "
            f"got {args.shard_index}/{args.shard_count}"
        )
    return args


def print_report(report: IngestionReport, console: Console) -> None:
    table = Table(title=f"Ingestion report (shard {report.shard_index + 1}/{report.shard_count})")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in report.to_dict().items():
        if key not in ("errors", "warnings", "shard_index", "shard_count"):
            table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    for label, problems in (("error", report.errors), ("warning", report.warnings)):
        for problem in problems:
            console.print(f"[bold]{label}[/bold] {problem.source}: {problem.message}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    console = Console(stderr=True)
    sources_file = args.sources or settings.sources_file
    config = SourcesConfig.read(sources_file)
    items, problems = enumerate_sources(
        config,
        base_dir=sources_file.parent if args.sources else REPO_ROOT,
        cache_dir=settings.source_cache_dir,
        max_bytes=settings.max_document_bytes,
    )
    client = make_client(settings)
    try:
        embeddings = make_embeddings(settings)
        report = ingest(
            items,
            problems,
            client=client,
            collection=settings.collection_name,
            embeddings=embeddings,
            dimension=embedding_dimension(embeddings),
            chunker=Chunker(settings.chunk_size, settings.chunk_overlap),
            batch_size=settings.embedding_batch_size,
            shard_index=args.shard_index,
            shard_count=args.shard_count,
            console=console,
        )
    except (CollectionMismatch, ValueError) as exc:
        console.print(f"[bold red]ingestion failed:[/bold red] {exc}")
        return 2
    except APIError as exc:  # EMBEDDING_PROVIDER=openai: the endpoint failed or is down
        console.print(
            f"[bold red]ingestion failed:[/bold red] embeddings endpoint "
            f"{settings.embedding_base_url or 'https://api.openai.com/v1'}: {exc}; "
            "check EMBEDDING_BASE_URL and EMBEDDING_MODEL"
        )
        return 2
    finally:
        client.close()
    print_report(report, console)
    if args.report:
        args.report.write_text(json.dumps(report.to_dict(), indent=2))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
