"""Which checkpoint vLLM serves for a (model, quantization) pair, and with which flag.

vLLM quantizes some methods while loading (``fp8``: bf16 weights, FP8 on the GPU) and
needs others done beforehand: for AWQ and GPTQ it reads the quantization config from
the checkpoint (``quantization_config`` in its config.json) and refuses an unquantized
one ("Cannot find the config file for awq_marlin"). So every AWQ/GPTQ pair the form
offers names a public pre-quantized checkpoint of that model, with the
``quantization_config`` it publishes; tests/deploy_bundle/test_vllm_contract.py holds
these against vLLM 0.10.1.1's own source (flag choices, which methods need a
pre-quantized checkpoint, what each Marlin kernel accepts).

A custom model is served from the id the form gives; for AWQ or GPTQ that id must be a
pre-quantized checkpoint (its config.json carries ``quantization_config`` with
``quant_method`` "awq" or "gptq"): the portal cannot read Hugging Face to check it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantizationConfig:
    """The ``quantization_config`` a pre-quantized checkpoint publishes (what vLLM reads)."""

    quant_method: str
    bits: int
    group_size: int
    zero_point: bool | None = None  # AWQ
    sym: bool | None = None  # GPTQ
    desc_act: bool | None = None  # GPTQ


@dataclass(frozen=True)
class Checkpoint:
    hf_id: str
    # vLLM's --quantization value; None: serve the weights as they are.
    vllm_quantization: str | None
    # Set for a pre-quantized checkpoint; None when vLLM quantizes at load time or not at all.
    prequantized: QuantizationConfig | None = None


# The form's quantization -> vLLM's --quantization. AWQ and GPTQ run on the Marlin
# kernels (every GPU class offered is Ampere or newer).
VLLM_QUANTIZATION: dict[str, str | None] = {
    "bf16": None,
    "fp8": "fp8",
    "awq": "awq_marlin",
    "gptq": "gptq_marlin",
}
# Form quantizations whose weights must be quantized before vLLM loads them, with the
# quant_method the checkpoint must declare.
PREQUANTIZED_METHOD: dict[str, str] = {"awq": "awq", "gptq": "gptq"}

_AWQ_INT4 = QuantizationConfig("awq", bits=4, group_size=128, zero_point=True)
_GPTQ_INT4 = QuantizationConfig("gptq", bits=4, group_size=128, sym=True, desc_act=False)

CHECKPOINTS: dict[tuple[str, str], Checkpoint] = {
    ("llama-3-8b-instruct", "bf16"): Checkpoint("meta-llama/Meta-Llama-3-8B-Instruct", None),
    ("llama-3-8b-instruct", "fp8"): Checkpoint("meta-llama/Meta-Llama-3-8B-Instruct", "fp8"),
    # AutoAWQ GEMM, 4 bit, group 128 (casperhansen maintains AutoAWQ).
    ("llama-3-8b-instruct", "awq"): Checkpoint(
        "casperhansen/llama-3-8b-instruct-awq", "awq_marlin", _AWQ_INT4
    ),
    # AutoGPTQ, 4 bit, group 128, act-order off.
    ("llama-3-8b-instruct", "gptq"): Checkpoint(
        "MaziyarPanahi/Meta-Llama-3-8B-Instruct-GPTQ", "gptq_marlin", _GPTQ_INT4
    ),
    ("llama-3-70b-instruct", "bf16"): Checkpoint("meta-llama/Meta-Llama-3-70B-Instruct", None),
    ("llama-3-70b-instruct", "fp8"): Checkpoint("meta-llama/Meta-Llama-3-70B-Instruct", "fp8"),
    ("llama-3-70b-instruct", "awq"): Checkpoint(
        "casperhansen/llama-3-70b-instruct-awq", "awq_marlin", _AWQ_INT4
    ),
    ("llama-3-70b-instruct", "gptq"): Checkpoint(
        "MaziyarPanahi/Meta-Llama-3-70B-Instruct-GPTQ", "gptq_marlin", _GPTQ_INT4
    ),
}


def checkpoint_for(model: str, quantization: str, custom_id: str | None = None) -> Checkpoint:
    """The checkpoint and flag for a pair; ``custom_id`` serves a custom model as given.

    Raises KeyError for a pair of known models that has no checkpoint (not offered)."""
    if custom_id:
        return Checkpoint(custom_id, VLLM_QUANTIZATION[quantization])
    return CHECKPOINTS[(model, quantization)]


def custom_model_needs(quantization: str) -> str | None:
    """What a custom model id must be for this quantization, in words (None: any)."""
    method = PREQUANTIZED_METHOD.get(quantization)
    if method is None:
        return None
    return (
        f"a pre-quantized {method.upper()} checkpoint (its config.json has quantization_config "
        f"with quant_method '{method}'); vLLM refuses unquantized weights with "
        f"--quantization {VLLM_QUANTIZATION[quantization]}"
    )
