"""GPU sizing against hand computation (decimal GB, 0.9 utilization, 1.5 GB overhead/GPU)."""

from __future__ import annotations

import pytest

from catalog.errors import UnprocessableError
from portal_backend.rag.sizing import size_deployment

# Usable GB per GPU = memory x 0.9 - 1.5.
L4_USABLE = 24 * 0.9 - 1.5  # 20.1
H100_USABLE = 80 * 0.9 - 1.5  # 70.5
# KV bytes per token = 2 x layers x KV heads x head dim x bytes.
KV_8B_BF16 = 2 * 32 * 8 * 128 * 2  # 131072
KV_8B_FP8 = 2 * 32 * 8 * 128 * 1  # 65536
KV_70B_BF16 = 2 * 80 * 8 * 128 * 2  # 327680


def test_8b_bf16_on_one_l4() -> None:
    r = size_deployment("llama-3-8b-instruct", "bf16", "L4", max_context=8192, concurrency=1)
    assert r.weights_gb == round(8.03 * 2, 2) == 16.06
    assert r.kv_bytes_per_token == KV_8B_BF16
    assert r.kv_cache_gb == round(KV_8B_BF16 * 8192 / 1e9, 2) == 1.07
    assert r.usable_gb_per_gpu == round(L4_USABLE, 2) == 20.1
    assert (r.gpus, r.tensor_parallel_size, r.fits) == (1, 1, True)
    assert r.kv_cache_dtype == "auto"
    assert (r.max_model_len, r.gpu_memory_utilization) == (8192, 0.9)
    assert "131072 B/token" in r.reason and "fits on 1 x L4" in r.reason


def test_8b_fp8_on_l4_uses_an_fp8_kv_cache() -> None:
    r = size_deployment("llama-3-8b-instruct", "fp8", "L4")
    assert r.weights_gb == 8.03
    assert r.kv_bytes_per_token == KV_8B_FP8
    assert r.kv_cache_gb == round(KV_8B_FP8 * 8192 / 1e9, 2) == 0.54
    assert (r.gpus, r.kv_cache_dtype, r.fits) == (1, "fp8", True)


def test_fp8_kv_cache_only_where_the_gpu_runs_fp8() -> None:
    # Ampere (A100, A10G) runs FP8 weights through weight-only kernels; KV stays 16-bit.
    r = size_deployment("llama-3-8b-instruct", "fp8", "A100-40GB")
    assert r.kv_cache_dtype == "auto" and r.kv_bytes_per_token == KV_8B_BF16


def test_70b_awq_on_one_a100_80() -> None:
    r = size_deployment("llama-3-70b-instruct", "awq", "A100-80GB")
    assert r.weights_gb == round(70.55 * 0.52, 2) == 36.69
    assert r.kv_cache_gb == round(KV_70B_BF16 * 8192 / 1e9, 2) == 2.68
    assert (r.gpus, r.tensor_parallel_size, r.fits) == (1, 1, True)


def test_70b_bf16_needs_four_h100_with_tp4() -> None:
    r = size_deployment("llama-3-70b-instruct", "bf16", "H100")
    needed = 70.55 * 2 + KV_70B_BF16 * 8192 / 1e9  # 143.78 GB
    assert needed > 2 * H100_USABLE  # 141.0: two are not enough
    assert needed <= 4 * H100_USABLE  # 282.0
    assert r.weights_gb == 141.1
    assert (r.gpus, r.tensor_parallel_size, r.fits) == (4, 4, True)
    assert "143.78 GB" in r.reason and "fits on 4 x H100" in r.reason


def test_concurrency_grows_the_kv_cache_and_the_gpu_count() -> None:
    # 16.06 + 4 x 1.07 = 20.35 GB > 20.1 GB of one L4: two GPUs, TP 2.
    r = size_deployment("llama-3-8b-instruct", "bf16", "L4", concurrency=4)
    assert r.kv_cache_gb == round(4 * KV_8B_BF16 * 8192 / 1e9, 2) == 4.29
    assert (r.gpus, r.tensor_parallel_size) == (2, 2)


def test_70b_bf16_on_one_l4_is_refused_with_what_would_fit() -> None:
    r = size_deployment("llama-3-70b-instruct", "bf16", "L4", max_gpus=1)
    assert not r.fits
    assert "does not fit on 1 x L4" in r.reason
    # Same quantization elsewhere: 2 x H200 (2 x 125.4 GB), 4 x H100.
    assert "needs >= 2 x H200" in r.reason and "4 x H100" in r.reason
    # Same GPU: AWQ 36.69 + 2.68 = 39.37 GB on 2 x 20.1; fp8 70.55 + 1.34 = 71.89 on 4.
    assert "on L4 try fp8 with 4 GPUs or awq with 2 GPUs" in r.reason
    alternatives = {(a.gpu, a.quantization): a.gpus for a in r.alternatives}
    assert alternatives[("H200", "bf16")] == 2
    assert alternatives[("H100", "bf16")] == 4
    assert alternatives[("L4", "awq")] == 2
    # On one node of L4s, bf16 70B would need all 8 (8 x 20.1 = 160.8 GB).
    assert r.gpus == 8


def test_gpu_class_spellings() -> None:
    assert size_deployment("llama-3-8b-instruct", "bf16", "a100_80gb").gpu == "A100-80GB"
    assert size_deployment("llama-3-8b-instruct", "bf16", "A100-40").gpu == "A100-40GB"


def test_bad_input_names_every_field_and_the_allowed_values() -> None:
    with pytest.raises(UnprocessableError) as info:
        size_deployment("llama-2-7b", "int3", "T4", max_context=100_000, concurrency=0, max_gpus=16)
    details = {d.path: d.message for d in info.value.details}
    assert set(details) == {
        "model",
        "quantization",
        "gpu",
        "max_context",
        "concurrency",
        "max_gpus",
    }
    assert "llama-3-8b-instruct, llama-3-70b-instruct" in details["model"]
    assert "bf16, fp8, awq, gptq" in details["quantization"]
    assert "L4, A10G, A100-40GB, A100-80GB, H100, H200" in details["gpu"]
    assert "256 to 8192" in details["max_context"]
    assert "1 to 8 (one node)" in details["max_gpus"]
