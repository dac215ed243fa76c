"""Deployment bundle: how long sizing, rendering and validating a generated bundle take.

Prints one table: GPU sizing calls per second (fits and refusals with alternatives),
rendering the rag-service skeleton with cookiecutter, rendering the prod overlay with
the portal's kustomize renderer, and validating every object strictly with
kubernetes-validate for 1.29-1.33 (schema reads memoized, as the tests do).

    .venv/bin/python -m benchmarks.deploy_bundle [--repeat N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils
from cookiecutter.main import cookiecutter

from portal_backend.provisioning.bundle import render_kustomization
from portal_backend.rag.sizing import size_deployment

SKELETON = Path(__file__).resolve().parents[1] / "scaffolder_templates" / "rag-service" / "skeleton"
VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
        kubernetes_validate.utils.schema_contents
    )
    rows: list[tuple[str, str]] = []

    n = 2000
    fit = timed(
        lambda: [size_deployment("llama-3-70b-instruct", "bf16", "H100") for _ in range(n)], 3
    )
    rows.append(("sizing, fits (calls/s)", f"{n / statistics.median(fit):,.0f}"))
    refuse = timed(
        lambda: [
            size_deployment("llama-3-70b-instruct", "bf16", "L4", max_gpus=1) for _ in range(n)
        ],
        3,
    )
    rows.append(
        ("sizing, refusal + alternatives (calls/s)", f"{n / statistics.median(refuse):,.0f}")
    )

    workdir = Path(tempfile.mkdtemp())
    sizing = size_deployment("llama-3-70b-instruct", "bf16", "H100")
    context = {
        "service_name": "bench",
        "model": "llama-3-70b-instruct",
        "quantization": "bf16",
        "gpu_class": "H100",
        "gpus": str(sizing.gpus),
        "tensor_parallel_size": str(sizing.tensor_parallel_size),
        "qdrant_replicas": "3",
    }
    counter = iter(range(10_000))
    projects: list[Path] = []

    def render_skeleton() -> None:
        out = workdir / str(next(counter))
        projects.append(
            Path(
                cookiecutter(
                    str(SKELETON), no_input=True, extra_context=context, output_dir=str(out)
                )
            )
        )

    samples = timed(render_skeleton, args.repeat)
    rows.append(
        (
            "cookiecutter render of the whole skeleton (ms, median)",
            f"{statistics.median(samples) * 1000:.0f}",
        )
    )
    overlay = projects[-1] / "deploy" / "k8s" / "overlays" / "prod"
    objects = render_kustomization(overlay)
    samples = timed(lambda: render_kustomization(overlay), args.repeat)
    rows.append(
        (
            f"kustomize prod overlay, portal renderer ({len(objects)} objects, ms)",
            f"{statistics.median(samples) * 1000:.1f}",
        )
    )

    def validate_all() -> None:
        for version in VERSIONS:
            for obj in objects:
                kubernetes_validate.validate(obj, version, strict=True)

    validate_all()  # warm the schema cache
    samples = timed(validate_all, max(1, args.repeat // 2))
    per_object = statistics.median(samples) / (len(objects) * len(VERSIONS)) * 1000
    rows.append(
        (
            "strict validation, 5 versions x all objects (ms)",
            f"{statistics.median(samples) * 1000:.0f}",
        )
    )
    rows.append(("strict validation per object and version (ms)", f"{per_object:.2f}"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width} | -----")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
