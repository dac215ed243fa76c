"""Every (model, quantization) pair the form offers starts on the pinned vLLM.

vLLM cannot run here (no GPU, no weights), so the generated arguments are held against
vLLM 0.10.1.1's own code (tests/deploy_bundle/vllm_source.py reads it from the files
copied verbatim from its sdist): every flag exists and parses, ``--quantization`` is one
of its methods, a method that needs a pre-quantized checkpoint gets one whose published
quantization config its kernel converts, the kernel runs on every GPU class offered,
and the LoRA flags are within its limits. Each pair is rendered through the template's
own flow (form -> rag:sizing -> price -> fetch values -> cookiecutter), and both
serving/vllm-args.json and the Kubernetes Deployment are checked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from portal_backend.rag.checkpoints import CHECKPOINTS, Checkpoint
from portal_backend.rag.gpu_classes import GPU_CLASSES
from portal_backend.rag.sizing import LORA_RANKS, size_deployment
from tests.deploy_bundle import vllm_source
from tests.deploy_bundle.conftest import SKELETON
from tests.deploy_bundle.conftest import render as kustomize
from tests.rag_template.conftest import render
from tests.rag_template.template_flow import cookiecutter_values, load_template

SKELETON_ROOT = SKELETON / "{{cookiecutter.service_name}}"


def _form(name: str) -> dict[str, Any]:
    for page in load_template()["spec"]["parameters"]:
        if name in page.get("properties", {}):
            return page["properties"][name]
    raise KeyError(name)


OFFERED_PAIRS = [
    (model, quantization)
    for model in _form("model")["enum"]
    if model != "custom"
    for quantization in _form("quantization")["enum"]
]


def _smallest_fitting_gpu(model: str, quantization: str) -> str:
    for gpu in _form("gpu_class")["enum"]:
        if size_deployment(model, quantization, gpu).fits:
            return gpu
    raise AssertionError(f"{model} {quantization} fits on no GPU class of the form")


def _rendered_args(
    tmp_path: Path, answers: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(fetch values, serving/vllm-args.json, the vLLM Deployment's args)."""
    values = cookiecutter_values({"owner": "group:default/team-a", **answers}, tmp_path)
    repo = render(tmp_path / "out", values)
    from_file = json.loads((repo / "serving" / "vllm-args.json").read_text())
    objects = kustomize(repo / "deploy" / "k8s" / "overlays" / "prod")
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-vllm")
    )
    return values, from_file, deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def vllm_problems(args: list[str], checkpoint: Checkpoint, gpu_classes: list[str]) -> list[str]:
    """Why vLLM 0.10.1.1 would refuse to start with ``args`` (empty: it starts)."""
    try:
        parsed = vllm_source.parse_args(args)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if parsed.get("--model") != [checkpoint.hf_id]:
        problems.append(f"--model {parsed.get('--model')} is not the checkpoint {checkpoint}")
    (method_name,) = parsed.get("--quantization", [None])
    if method_name is None:
        return problems
    method = vllm_source.quantization_method(method_name)
    for gpu in gpu_classes:
        if GPU_CLASSES[gpu].compute_capability < method.min_capability:
            problems.append(
                f"{method_name} needs compute capability {method.min_capability}; "
                f"{gpu} has {GPU_CLASSES[gpu].compute_capability}"
            )
    if not method.needs_prequantized_checkpoint:
        return problems
    published = checkpoint.prequantized
    if published is None:
        return problems + [
            f"--quantization {method_name} reads {method.config_filenames} from a "
            f"pre-quantized checkpoint; {checkpoint.hf_id} is not one"
        ]
    wanted = method.checkpoint_quant_method()
    if published.quant_method != wanted:
        problems.append(
            f"{method_name} converts quant_method {wanted!r}, the checkpoint has "
            f"{published.quant_method!r}"
        )
    formats = method.type_map_keys()
    key = (
        published.bits
        if all(isinstance(k, int) for k in formats)
        else (
            published.bits,
            published.sym,
        )
    )
    if key not in formats:
        problems.append(f"{method_name} converts weights {formats}, the checkpoint has {key}")
    if published.group_size not in vllm_source.marlin_group_sizes():
        problems.append(f"group size {published.group_size} is not one Marlin supports")
    return problems


def test_the_vendored_source_is_the_pinned_vllm_unchanged() -> None:
    manifest = vllm_source.manifest()
    assert manifest["version"] == vllm_source.VERSION
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["sdist_sha256"])
    assert vllm_source.tampered_files() == []
    pyproject = (SKELETON_ROOT / "pyproject.toml").read_text()
    assert f'gpu = ["vllm=={manifest["version"]}"]' in pyproject
    deployment = (SKELETON_ROOT / "deploy/k8s/base/vllm-deployment.yaml").read_text()
    assert f"image: vllm/vllm-openai:v{manifest['version']}" in deployment
    # The rule the checks below rely on still holds in this version's loader.
    assert vllm_source.loader_requires_config_file()


@pytest.mark.parametrize(("model", "quantization"), OFFERED_PAIRS)
def test_every_offered_pair_names_a_checkpoint_vllm_starts(
    tmp_path: Path, model: str, quantization: str
) -> None:
    gpu = _smallest_fitting_gpu(model, quantization)
    values, from_file, in_deployment = _rendered_args(
        tmp_path,
        {"name": "pair-check", "model": model, "quantization": quantization, "gpu_class": gpu},
    )
    assert from_file == in_deployment
    checkpoint = CHECKPOINTS[(model, quantization)]
    assert values["model_hf_id"] == checkpoint.hf_id
    assert vllm_problems(in_deployment, checkpoint, _form("gpu_class")["enum"]) == []


def test_the_checks_refuse_what_vllm_refuses() -> None:
    """The unquantized checkpoint with awq_marlin (the bug this replaces), an unknown
    quantization and a malformed flag value are each caught."""
    base = CHECKPOINTS[("llama-3-8b-instruct", "bf16")]
    awq = CHECKPOINTS[("llama-3-8b-instruct", "awq")]
    args = ["--model", base.hf_id, "--quantization", "awq_marlin", "--max-model-len", "8192"]
    assert "is not one" in vllm_problems(args, base, ["L4"])[0]
    gptq_for_awq = ["--model", awq.hf_id, "--quantization", "gptq_marlin"]
    assert "converts quant_method 'gptq'" in vllm_problems(gptq_for_awq, awq, ["L4"])[0]
    assert "choices" in vllm_problems(["--model", "m", "--quantization", "awq4"], base, [])[0]
    assert "not a flag" in vllm_problems(["--model", "m", "--lora", "x"], base, [])[0]
    assert "expects int" in vllm_problems(["--model", "m", "--max-loras", "two"], base, [])[0]


def test_lora_arguments_are_within_vllms_limits(tmp_path: Path) -> None:
    adapters = [
        {"name": "support-tone", "source": "acme/support-tone-lora", "rank": 16},
        {"name": "legal", "source": "acme/legal-lora", "rank": 64},
    ]
    values, from_file, in_deployment = _rendered_args(
        tmp_path,
        {"name": "lora-check", "quantization": "awq", "gpu_class": "L4", "lora_adapters": adapters},
    )
    assert from_file == in_deployment
    parsed = vllm_source.parse_args(in_deployment)
    assert parsed["--enable-lora"] == []
    # One GPU slot per adapter at the largest rank: what sizing counted.
    assert parsed["--max-loras"] == ["2"] and values["max_loras"] == 2
    assert parsed["--max-lora-rank"] == ["64"] and int("64") in vllm_source.lora_max_ranks()
    assert parsed["--lora-modules"] == [
        "support-tone=acme/support-tone-lora",
        "legal=acme/legal-lora",
    ]
    assert all(vllm_source.lora_module_is_name_path(m) for m in parsed["--lora-modules"])
    assert vllm_problems(in_deployment, CHECKPOINTS[("llama-3-8b-instruct", "awq")], ["L4"]) == []


def test_the_form_offers_only_ranks_and_kv_dtypes_vllm_has() -> None:
    ranks = _form("lora_adapters")["items"]["properties"]["rank"]["enum"]
    assert tuple(ranks) == LORA_RANKS == vllm_source.lora_max_ranks()
    kv_dtypes = vllm_source.cli_flags()["--kv-cache-dtype"].choices
    for gpu in _form("gpu_class")["enum"]:
        for quantization in _form("quantization")["enum"]:
            sized = size_deployment("llama-3-8b-instruct", quantization, gpu)
            assert sized.kv_cache_dtype in kv_dtypes


def test_a_custom_model_says_what_its_checkpoint_must_be(tmp_path: Path) -> None:
    described = _form("custom_model_id")["description"]
    assert "pre-quantized" in described and "quant_method" in described
    values, _, in_deployment = _rendered_args(
        tmp_path,
        {
            "name": "custom-check",
            "model": "custom",
            "custom_model_id": "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
            "custom_model_spec": {
                "parameters_b": 7.24,
                "layers": 32,
                "kv_heads": 8,
                "head_dim": 128,
            },
            "quantization": "awq",
            "gpu_class": "L4",
        },
    )
    parsed = vllm_source.parse_args(in_deployment)
    assert parsed["--model"] == ["TheBloke/Mistral-7B-Instruct-v0.2-AWQ"]
    assert parsed["--quantization"] == ["awq_marlin"]
    assert values["model_hf_id"] == "TheBloke/Mistral-7B-Instruct-v0.2-AWQ"
