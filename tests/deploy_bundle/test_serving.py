"""serving/: `make serve-llm` runs vLLM with the very arguments of the Deployment."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from .conftest import Rendered


def _serve_llm(root: Path) -> ModuleType:
    path = root / "serving" / "serve_llm.py"
    spec = importlib.util.spec_from_file_location(f"serve_llm_{root.name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serve_llm_uses_the_deployment_arguments(rendered: Rendered) -> None:
    module = _serve_llm(rendered.root)
    deployment = rendered.by_kind("prod", "Deployment")[f"{rendered.name}-vllm"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert module.vllm_args({}) == container["args"]


def test_trying_a_small_model_drops_the_checkpoint_specific_arguments(rendered: Rendered) -> None:
    module = _serve_llm(rendered.root)
    args = module.vllm_args(
        {
            "VLLM_MODEL": "/models/smollm2",
            "VLLM_MAX_MODEL_LEN": "2048",
            "VLLM_PORT": "8011",
            "VLLM_EXTRA_ARGS": "--enforce-eager",
        }
    )
    assert args[args.index("--model") + 1] == "/models/smollm2"
    assert args[args.index("--max-model-len") + 1] == "2048"
    assert args[args.index("--port") + 1] == "8011"
    assert args[-1] == "--enforce-eager"
    for flag in ("--quantization", "--enable-lora", "--lora-modules", "--max-loras"):
        assert flag not in args
    assert not any("=" in a for a in args)  # no LoRA module left behind
    # What the cluster's sizing decided still holds.
    assert args[args.index("--tensor-parallel-size") + 1] == str(
        rendered.context["tensor_parallel_size"]
    )


def test_gpu_extra_and_make_targets(rendered: Rendered) -> None:
    pyproject = (rendered.root / "pyproject.toml").read_text()
    assert 'gpu = ["vllm==0.10.1.1"]' in pyproject
    makefile = (rendered.root / "Makefile").read_text()
    assert "serve-llm:" in makefile and "validate-deploy:" in makefile
    assert (rendered.root / "deploy" / "validate.sh").stat().st_mode & 0o111
