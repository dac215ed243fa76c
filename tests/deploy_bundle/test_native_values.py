"""The template hands the skeleton native values (ints, floats, booleans rendered by
expressions), not only strings: render through fetch:cookiecutter's own context
building and check the bundle still validates and says the same thing."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
from cookiecutter.generate import generate_files

from portal_backend.rag.sizing import size_deployment
from portal_backend.scaffolder.actions.fetch import build_context

from .conftest import SKELETON, render


def test_native_typed_values_render_a_valid_bundle(tmp_path: Path) -> None:
    sizing = size_deployment("llama-3-70b-instruct", "awq", "A100-80GB", 8192, 4)
    values = {
        "service_name": "native-values",
        "model": "llama-3-70b-instruct",
        "model_hf_id": "casperhansen/llama-3-70b-instruct-awq",
        "quantization": "awq",
        "gpu_class": "A100-80GB",
        "gpus": sizing.gpus,
        "tensor_parallel_size": sizing.tensor_parallel_size,
        "max_model_len": sizing.max_model_len,
        "gpu_memory_utilization": sizing.gpu_memory_utilization,
        "kv_cache_dtype": sizing.kv_cache_dtype,
        "replicas": 2,
        "qdrant_replicas": 3,
        "lora_adapters": {"items": []},
        "cpu_fallback_enabled": "false",
        "slo_p95_latency_ms": 1500,
        "slo_success_rate": 99.9,
        "monthly_budget_usd": 12000,
        "embedding_dimension": 768,
        "gpu_hourly_usd": 3.7,
        "gpu_product_label": "NVIDIA-A100-SXM4-80GB",
    }
    context = build_context(SKELETON, values, {})
    context["cookiecutter"]["_template"] = str(SKELETON)
    project = Path(
        generate_files(repo_dir=str(SKELETON), context=context, output_dir=str(tmp_path))
    )
    objects = render(project / "deploy" / "k8s" / "overlays" / "prod")
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33", strict=True)
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    vllm = by_key["Deployment", "native-values-vllm"]
    assert vllm["spec"]["replicas"] == 2
    args = vllm["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "1"
    rules = (project / "monitoring" / "prometheus-rules.yaml").read_text()
    assert 'le="1.5"' in rules
    # 14.4 x (100 - 99.9) / 100 = 0.0144
    assert "> 0.0144" in rules
    assert "> 12000.0" in rules
    bootstrap = next(
        o for o in objects if o["metadata"]["name"] == "native-values-qdrant-bootstrap"
    )
    assert '"size": 768' in bootstrap["data"]["collection.json"]
