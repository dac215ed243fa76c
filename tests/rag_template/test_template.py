"""template.yaml: the form, its validation, and step inputs that fit the skeleton."""

from __future__ import annotations

import json
from pathlib import Path

from portal_backend.scaffolder.engine import portal_context
from portal_backend.scaffolder.expressions import render_value
from portal_backend.settings import Settings
from tests.rag_template.conftest import SKELETON, render
from tests.rag_template.template_flow import (
    cookiecutter_values,
    form_errors,
    load_template,
    step,
    with_defaults,
)

FORM_KEYS = (
    "service_name owner description system source_git_repos source_urls "
    "source_confluence_dirs include_example_corpus chunk_size chunk_overlap embedding_model "
    "embedding_dimension model "
    "model_hf_id quantization kv_cache_dtype gpu_class gpus tensor_parallel_size max_model_len "
    "gpu_memory_utilization replicas qdrant_replicas lora_adapters cpu_fallback_enabled "
    "slo_p95_latency_ms slo_success_rate monthly_budget_usd"
).split()
BASE = {"name": "hr-assistant", "owner": "group:default/people-team"}


def test_template_entity_shape():
    template = load_template()
    assert template["apiVersion"] == "scaffolder.backstage.io/v1beta3"
    assert template["kind"] == "Template" and template["metadata"]["name"] == "rag-service"
    pages = template["spec"]["parameters"]
    assert [p["title"] for p in pages] == [
        "Service",
        "Documents",
        "Model and GPUs",
        "SLO and budget",
    ]
    owner = pages[0]["properties"]["owner"]
    assert owner["ui:field"] == "OwnerPicker"
    assert owner["ui:options"]["allowedKinds"] == ["Group"]
    assert owner["ui:options"]["catalogFilter"] == {"kind": ["Group"]}
    steps = [(s["id"], s["action"]) for s in template["spec"]["steps"]]
    assert steps == [
        ("owner", "catalog:fetch"),
        ("sizing", "rag:sizing"),
        ("versions", "rag:catalog-versions"),
        ("price", "rag:gpu-price"),
        ("fetch", "fetch:cookiecutter"),
        ("publish", "publish:git"),
        ("register", "catalog:register"),
        ("provision", "rag:provision"),
    ]
    titles = [link["title"] for link in template["spec"]["output"]["links"]]
    assert titles == ["Repository", "Open in catalog"]


def test_form_refuses_bad_answers():
    assert form_errors(with_defaults(BASE)) == []
    bad = {
        **BASE,
        "name": "HR_Assistant",
        "quantization": "int3",
        "gpu_class": "T4",
        "lora_adapters": [{"name": "x"}],
        "source_urls": ["ftp://x"],
        "slo_success_rate": 101,
    }
    errors = "\n".join(form_errors(with_defaults(bad)))
    for field in (
        "name",
        "quantization",
        "gpu_class",
        "lora_adapters.0",
        "source_urls.0",
        "slo_success_rate",
    ):
        assert f"{field}:" in errors, (field, errors)
    custom = form_errors(with_defaults({**BASE, "model": "custom"}))
    assert any("custom_model_id" in e for e in custom)


def test_fetch_values_cover_the_skeleton_contract(tmp_path: Path):
    values = cookiecutter_values(
        {**BASE, "model": "llama-3-70b-instruct", "quantization": "bf16", "gpu_class": "H100"},
        tmp_path,
    )
    contract = json.loads((SKELETON / "cookiecutter.json").read_text())
    # Every value the template passes is a skeleton key (no typo silently ignored) ...
    assert set(values) - set(contract) == set()
    # ... and every answer of the form reaches the skeleton.
    assert set(FORM_KEYS) <= set(values)
    assert values["model_hf_id"] == "meta-llama/Meta-Llama-3-70B-Instruct"
    assert values["gpus"] >= 2 and values["tensor_parallel_size"] == values["gpus"]
    assert values["source_git_repos"] == {"items": []}
    assert values["embedding_dimension"] == 384
    assert values["cpu_fallback_enabled"] == "true"


def test_custom_model_is_sized_from_its_architecture(tmp_path: Path):
    values = cookiecutter_values(
        {
            **BASE,
            "model": "custom",
            "custom_model_id": "mistralai/Mistral-7B-Instruct-v0.3",
            "custom_model_spec": {
                "parameters_b": 7.25,
                "layers": 32,
                "kv_heads": 8,
                "head_dim": 128,
            },
            "gpu_class": "L4",
        },
        tmp_path,
    )
    assert values["model_hf_id"] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert values["gpus"] >= 1


def test_publish_and_register_inputs(tmp_path: Path):
    template = load_template()
    context = {
        "parameters": with_defaults(BASE),
        "steps": {"publish": {"output": {"repoContentsUrl": "file:///repos/x", "remoteUrl": "r"}}},
        "portal": portal_context(Settings(scaffolder_default_git_host="github.com")),
    }
    publish = render_value(step(template, "publish")["input"], context)
    # The portal's git host (a setting), not a host fixed in the template.
    assert publish["repoUrl"] == "github.com?owner=people-team&repo=hr-assistant"
    register = render_value(step(template, "register")["input"], context)
    assert register["catalogInfoPath"] == "/catalog-info.yaml"
    assert register["repoContentsUrl"] == "file:///repos/x"


def test_values_render_with_cookiecutter(tmp_path: Path):
    values = cookiecutter_values(
        {**BASE, "lora_adapters": [{"name": "hr-tone", "source": "org/hr-tone-lora"}]}, tmp_path
    )
    repo = render(tmp_path / "out", values)
    assert repo.name == "hr-assistant"
    sources = json.loads((repo / "sources.json").read_text())
    # No source given: the example corpus is there (see the test below).
    assert sources == {
        "local_dirs": ["docs", "examples/corpus"],
        "git_repos": [],
        "urls": [],
        "confluence_dirs": [],
    }
    assert 'SERVICE_NAME = "hr-assistant"' in (repo / "app" / "settings.py").read_text()


def test_example_corpus_is_ingested_only_when_the_form_asks(tmp_path: Path):
    """A service with sources of its own gets the template's sample pages only when the
    box is ticked (docs/ empty, no sample source, no sample golden question); a service
    given no source at all gets them, so it answers from the start."""
    own = {**BASE, "source_urls": ["https://intranet.example.com/policy.html"]}
    plain = render(tmp_path / "plain", cookiecutter_values(own, tmp_path))
    assert json.loads((plain / "sources.json").read_text())["local_dirs"] == ["docs"]
    assert [p.name for p in (plain / "docs").iterdir()] == [".gitkeep"]
    assert (plain / "eval" / "golden.jsonl").read_text().strip() == ""
    # The sample pages stay in the repository for its own tests, outside the sources.
    assert (plain / "examples" / "corpus" / "getting-started.md").is_file()

    for name, answers in {
        "ticked": {**own, "include_example_corpus": True},
        "no-sources": BASE,
    }.items():
        values = cookiecutter_values(answers, tmp_path)
        assert values["include_example_corpus"] == "true", name
        sample = render(tmp_path / name, values)
        sources = json.loads((sample / "sources.json").read_text())
        assert sources["local_dirs"] == ["docs", "examples/corpus"], name
        golden = (sample / "eval" / "golden.jsonl").read_text()
        assert golden.strip() == (sample / "examples" / "golden.jsonl").read_text().strip()
        corpus_page = (sample / "examples" / "corpus" / "getting-started.md").read_text()
        assert "hr-assistant" in corpus_page
