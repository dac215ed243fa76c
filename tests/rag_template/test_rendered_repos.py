"""The template over a matrix of form answers: every rendered repository is ruff clean,
its own test suite passes in the shared environment, and its catalog-info.yaml is valid
in our catalog and registers with the expected relations."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, create_engine

from catalog.service import CatalogService
from tests.rag_template.conftest import render
from tests.rag_template.template_flow import cookiecutter_values

OWNER = "group:default/search-team"
LORA = [{"name": "support-tone", "source": "acme/support-tone-lora"}]
CASES = {
    "kb-8b-git": {
        "model": "llama-3-8b-instruct",
        "quantization": "bf16",
        "gpu_class": "L4",
        "source_git_repos": [
            {"url": "https://git.example.com/acme/handbook.git", "ref": "main", "path": "docs"}
        ],
    },
    "kb-8b-lora-urls": {
        "model": "llama-3-8b-instruct",
        "quantization": "fp8",
        "gpu_class": "L4",
        "lora_adapters": LORA,
        "source_urls": [
            "https://intranet.example.com/policy.pdf",
            "https://intranet.example.com/faq.html",
        ],
    },
    "kb-70b-confluence": {
        "model": "llama-3-70b-instruct",
        "quantization": "awq",
        "gpu_class": "A100-80GB",
        "source_confluence_dirs": ["exports/ENG"],
        "cpu_fallback_enabled": False,
    },
    "kb-70b-lora-all": {
        "model": "llama-3-70b-instruct",
        "quantization": "bf16",
        "gpu_class": "H100",
        "lora_adapters": LORA,
        "qdrant_replicas": 3,
        "system": "system:default/knowledge",
        "description": 'Answers "hard" questions: policies & {{ braces }} stay text',
        "source_git_repos": [
            {"url": "https://git.example.com/acme/wiki.git", "ref": "v2", "path": ""}
        ],
        "source_urls": ["https://intranet.example.com/guide.pdf"],
        "source_confluence_dirs": ["exports/OPS"],
        "slo_p95_latency_ms": 3500,
    },
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, generated_venv: Path) -> dict[str, Path]:
    """All repositories rendered first, so each later check runs once per repository."""
    out = tmp_path_factory.mktemp("rendered")
    repos = {}
    for name, answers in CASES.items():
        values = cookiecutter_values({"name": name, "owner": OWNER, **answers}, out)
        repos[name] = render(out, values)
    return repos


def entities(repo: Path) -> list[dict]:
    return list(yaml.safe_load_all((repo / "catalog-info.yaml").read_text()))


def test_rendered_repositories_are_ruff_clean(rendered: dict[str, Path], generated_venv: Path):
    """`make lint` (ruff check + ruff format --check), the target CI runs."""
    for name, repo in rendered.items():
        lint = subprocess.run(
            ["make", "lint", f"PY={generated_venv}/bin/python"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert lint.returncode == 0, f"{name}:\n{lint.stdout}{lint.stderr}"
        assert "ruff format --check" in lint.stdout, lint.stdout  # both steps ran


@pytest.mark.parametrize("name", list(CASES))
def test_rendered_repository_tests_pass(rendered: dict[str, Path], name: str, generated_venv: Path):
    """`make test`, the command the generated README gives, in the shared environment."""
    result = subprocess.run(
        ["make", "test", f"PY={generated_venv}/bin/python"],
        cwd=rendered[name],
        env={**os.environ, "PYTHONPATH": str(rendered[name]), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 25, result.stdout[-2000:]


def test_answers_reach_the_rendered_files(rendered: dict[str, Path]):
    repo = rendered["kb-70b-lora-all"]
    sources = json.loads((repo / "sources.json").read_text())
    assert sources["git_repos"] == CASES["kb-70b-lora-all"]["source_git_repos"]
    assert sources["urls"] == ["https://intranet.example.com/guide.pdf"]
    assert sources["confluence_dirs"] == ["exports/OPS"]
    component = entities(repo)[0]
    assert component["metadata"]["description"] == CASES["kb-70b-lora-all"]["description"]
    assert component["spec"]["system"] == "system:default/knowledge"
    metrics = (repo / "app" / "metrics.py").read_text()
    assert "SLO_P95_LATENCY_SECONDS = 3500 / 1000" in metrics
    settings = (rendered["kb-70b-confluence"] / "app" / "settings.py").read_text()
    assert 'fallback_llm_base_url: str = ""' in settings


@pytest.mark.parametrize("name", list(CASES))
def test_catalog_info_validates_in_our_catalog(rendered: dict[str, Path], name: str):
    docs = entities(rendered[name])
    with Session(create_engine("sqlite://")) as session:
        catalog = CatalogService(session)
        for entity in docs:
            assert catalog.validate_entity(entity) == [], entity["metadata"]["name"]
    kinds = sorted((d["kind"], d["spec"]["type"]) for d in docs)
    assert kinds == [
        ("API", "openapi"),
        ("Component", "rag-service"),
        ("Resource", "ingestion-job"),
        ("Resource", "model-server"),
        ("Resource", "vector-collection"),
    ]
    annotations = docs[0]["metadata"]["annotations"]
    answers = CASES[name]
    assert annotations["rag-portal.io/model"] == answers["model"]
    assert annotations["rag-portal.io/gpu-class"] == answers["gpu_class"]
    assert annotations["rag-portal.io/namespace"] == name
    assert annotations["backstage.io/kubernetes-id"] == name
    assert int(annotations["rag-portal.io/gpus"]) >= 1
    for key in ("slo-p95-latency-ms", "slo-success-rate", "monthly-budget-usd", "endpoint"):
        assert annotations[f"rag-portal.io/{key}"]


def test_catalog_registration_computes_relations(rendered: dict[str, Path], session_factory):
    repo = rendered["kb-70b-lora-all"]
    with session_factory() as session:
        catalog = CatalogService(session)
        catalog.upsert_entities(entities(repo), location_key="url:file:///kb-70b-lora-all")
        session.commit()
        component = catalog.get_by_ref("component:default/kb-70b-lora-all")
        relations = {(r["type"], r["targetRef"]) for r in component["relations"]}
        assert ("ownedBy", OWNER) in relations
        assert ("providesApi", "api:default/kb-70b-lora-all-api") in relations
        assert ("dependsOn", "resource:default/kb-70b-lora-all-model-server") in relations
        assert ("partOf", "system:default/knowledge") in relations
        api = catalog.get_by_ref("api:default/kb-70b-lora-all-api")
        assert "/query" in yaml.safe_load(api["spec"]["definition"])["paths"]
