"""Renders the rag-service skeleton for the matrix of form answers in the issue.

Each case goes through the template's own data flow (tests/rag_template/template_flow):
form defaults, the real ``rag:sizing`` action, the price step over the portal's price
table, and the fetch step's values rendered by the engine's expression evaluator; the
skeleton is rendered as ``fetch:cookiecutter`` renders it.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from portal_backend.provisioning.bundle import render_kustomization
from portal_backend.rag.sizing import SizingResult, size_deployment
from portal_backend.sla.costs import DEFAULT_PRICES
from tests.rag_template.conftest import render as render_skeleton
from tests.rag_template.template_flow import cookiecutter_values

SKELETON = Path(__file__).resolve().parents[2] / "scaffolder_templates" / "rag-service" / "skeleton"
K8S_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")
OVERLAYS = ("dev", "prod")


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    quantization: str
    gpu: str
    qdrant_replicas: int
    loras: tuple[tuple[str, str], ...] = ()
    # More form answers, as the form sends them.
    extra: dict[str, Any] = field(default_factory=dict)
    # Price-table items an admin set (over the defaults).
    prices: dict[str, float] = field(default_factory=dict)


CASES = (
    Case("8b-bf16-l4", "llama-3-8b-instruct", "bf16", "L4", 1),
    Case(
        "8b-fp8-l4-lora-q3",
        "llama-3-8b-instruct",
        "fp8",
        "L4",
        3,
        (("legal", "acme/llama3-8b-legal-lora"), ("support", "acme/llama3-8b-support-lora")),
        {"cpu_fallback_enabled": False, "slo_success_rate": 99.5},
    ),
    Case(
        "70b-awq-a100-lora",
        "llama-3-70b-instruct",
        "awq",
        "A100-80GB",
        1,
        (("legal", "acme/llama3-70b-legal-lora"),),
        {"slo_p95_latency_ms": 2500},
    ),
    Case(
        "70b-bf16-h100-q3",
        "llama-3-70b-instruct",
        "bf16",
        "H100",
        3,
        (),
        {"replicas": 2, "monthly_budget_usd": 40000},
        {"gpu:nvidia-h100": 6.5},
    ),
)


@dataclass
class Rendered:
    case: Case
    sizing: SizingResult
    context: dict[str, Any]
    root: Path
    _overlays: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.context["service_name"]

    def overlay(self, env: str) -> list[dict[str, Any]]:
        if env not in self._overlays:
            self._overlays[env] = render(self.root / "deploy" / "k8s" / "overlays" / env)
        return copy.deepcopy(self._overlays[env])

    def by_kind(self, env: str, kind: str) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.overlay(env) if o["kind"] == kind}


def form_answers(case: Case) -> dict[str, Any]:
    return {
        "name": f"rag-{case.id}"[:40].rstrip("-"),
        "owner": "group:default/team-a",
        "model": case.model,
        "quantization": case.quantization,
        "gpu_class": case.gpu,
        "qdrant_replicas": case.qdrant_replicas,
        "lora_adapters": [{"name": n, "source": s} for n, s in case.loras],
        **case.extra,
    }


def context_for(case: Case, workspace: Path) -> dict[str, Any]:
    """The values the template's fetch step hands cookiecutter for this case."""
    prices = {**DEFAULT_PRICES, **case.prices}
    return cookiecutter_values(form_answers(case), workspace, prices=prices)


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` where installed, else the portal's own kustomize renderer."""
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, f"kubectl kustomize {directory} failed:\n{out.stderr}"
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    return render_kustomization(directory)


@pytest.fixture(scope="session")
def rendered_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    results: dict[str, Rendered] = {}
    for case in CASES:
        out = tmp_path_factory.mktemp(case.id)
        context = context_for(case, out)
        sizing = size_deployment(
            case.model, case.quantization, case.gpu, lora_ranks=[16] * len(case.loras)
        )
        assert sizing.fits, sizing.reason
        results[case.id] = Rendered(case, sizing, context, render_skeleton(out, context))
    return results


@pytest.fixture(params=[c.id for c in CASES])
def rendered(request: pytest.FixtureRequest, rendered_cases: dict[str, Rendered]) -> Rendered:
    return rendered_cases[request.param]
