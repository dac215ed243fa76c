"""``rag:sizing``: GPU count and vLLM settings for the form's model, quantization and GPU.

Its output feeds ``fetch:cookiecutter``: ``gpus``, ``tensor_parallel_size``,
``max_model_len``, ``gpu_memory_utilization``, ``kv_cache_dtype``, the checkpoint vLLM
serves and its ``--quantization`` (``checkpoint``, ``vllm_quantization``), the LoRA slots
(``max_loras``, ``max_lora_rank``, counted in the GPU memory) and the GPU class's node
label. One computation decides both the GPU count and the vLLM arguments, so they
cannot disagree. Its ``precheck`` refuses an impossible combination at submit time,
saying what would fit.
"""

from __future__ import annotations

from typing import Any

from catalog.errors import UnprocessableError
from portal_backend.rag.checkpoints import custom_model_needs
from portal_backend.rag.gpu_classes import GPU_CLASSES
from portal_backend.rag.sizing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LORA_RANK,
    DEFAULT_MAX_CONTEXT,
    LORA_FIELDS,
    MAX_GPUS_PER_NODE,
    MODELS,
    QUANTIZATIONS,
    ModelSpec,
    SizingResult,
    size_deployment,
)
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.settings import Settings

# Where each input comes from in the rag-service template's form, so that a refusal
# points at the field the user can change.
PARAMETER_OF_INPUT = {
    "model": "parameters.model",
    "quantization": "parameters.quantization",
    "gpu": "parameters.gpu_class",
    "max_context": "parameters.max_model_len",
    "concurrency": "parameters.concurrency",
    "max_gpus": "parameters.max_gpus",
    "model_spec": "parameters.custom_model_spec",
    "custom_model_id": "parameters.custom_model_id",
    "lora_adapters": "parameters.lora_adapters",
}

CUSTOM_MODEL_MAX_CONTEXT = 131072
_INT_OR_STRING = {"type": ["integer", "string"], "pattern": "^[0-9]+$"}


class _InputProblem(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _as_int(input: dict[str, Any], name: str, default: int) -> int:
    # Template expressions render to strings; accept "8192" as well as 8192.
    value = input.get(name)
    if value is None or value == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise _InputProblem(name, f"'{value}' is not a whole number") from None


def _custom_model(input: dict[str, Any]) -> ModelSpec | None:
    spec = input.get("model_spec")
    # A template expression with no custom model renders to null, "" or "None".
    if not spec or spec in ("None", "null"):
        return None
    if not isinstance(spec, dict):
        raise _InputProblem("model_spec", f"model_spec must be an object, got {spec!r}")
    optional = {f: int(spec[f]) for f in LORA_FIELDS if spec.get(f) not in (None, "")}
    try:
        return ModelSpec(
            id=str(input.get("model", "custom")),
            # The checkpoint vLLM serves: the form's model id.
            hf_id=str(input.get("custom_model_id") or spec.get("hf_id") or input.get("model")),
            parameters_b=float(spec["parameters_b"]),
            layers=int(spec["layers"]),
            kv_heads=int(spec["kv_heads"]),
            head_dim=int(spec["head_dim"]),
            attention_heads=int(optional.pop("attention_heads", spec["kv_heads"])),
            # Unknown context window: leave the check to vLLM, up to the form's maximum.
            max_context=int(spec.get("max_context", CUSTOM_MODEL_MAX_CONTEXT)),
            **optional,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _InputProblem(
            "model_spec",
            "model_spec needs numbers parameters_b, layers, kv_heads, head_dim "
            "(optional attention_heads, max_context; hidden_size, intermediate_size, "
            f"vocab_size for LoRA): {exc}",
        ) from None


def _lora_ranks(input: dict[str, Any]) -> list[int]:
    """One rank per adapter of the form's ``lora_adapters`` (default 16)."""
    adapters = input.get("lora_adapters") or []
    if not isinstance(adapters, list):
        raise _InputProblem("lora_adapters", "lora_adapters must be a list of {name, source}")
    ranks = []
    for index, adapter in enumerate(adapters):
        rank = adapter.get("rank", DEFAULT_LORA_RANK) if isinstance(adapter, dict) else None
        if isinstance(rank, bool) or not isinstance(rank, int | str) or not str(rank).isdigit():
            raise _InputProblem(
                "lora_adapters", f"lora_adapters.{index}.rank must be a whole number"
            )
        ranks.append(int(rank))
    return ranks


def _size(input: dict[str, Any]) -> SizingResult:
    return size_deployment(
        model=str(input.get("model", "")),
        quantization=str(input.get("quantization", "")),
        gpu=str(input.get("gpu", "")),
        max_context=_as_int(input, "max_context", DEFAULT_MAX_CONTEXT),
        concurrency=_as_int(input, "concurrency", DEFAULT_CONCURRENCY),
        max_gpus=_as_int(input, "max_gpus", MAX_GPUS_PER_NODE),
        custom_model=_custom_model(input),
        lora_ranks=_lora_ranks(input),
    )


def _output(result: SizingResult) -> dict[str, Any]:
    keys = (
        "weights_gb",
        "kv_cache_gb",
        "gpus",
        "tensor_parallel_size",
        "fits",
        "reason",
        "max_model_len",
        "gpu_memory_utilization",
        "kv_cache_dtype",
        "checkpoint",
        "vllm_quantization",
        "max_loras",
        "max_lora_rank",
        "lora_gb",
        "gpu_product_label",
    )
    data = result.as_dict()
    return {key: data[key] for key in keys}


@register
class RagSizingAction(Action):
    id = "rag:sizing"
    description = (
        "Sizes one vLLM replica: GPUs of the chosen class, tensor-parallel size and "
        "vLLM memory settings for a Llama 3 model; refuses combinations that cannot fit."
    )
    input_schema = {
        "type": "object",
        "required": ["model", "quantization", "gpu"],
        "properties": {
            "model": {"type": "string", "description": f"one of {', '.join(MODELS)}"},
            "quantization": {"type": "string", "enum": list(QUANTIZATIONS)},
            "gpu": {"type": "string", "description": f"one of {', '.join(GPU_CLASSES)}"},
            "max_context": {**_INT_OR_STRING, "description": "max model length (tokens)"},
            "concurrency": {
                **_INT_OR_STRING,
                "description": "full-length sequences the KV cache must hold at once",
            },
            "max_gpus": {**_INT_OR_STRING, "description": "GPUs on one node (default 8)"},
            "model_spec": {
                # The shipped template renders null when the model is not custom.
                "type": ["object", "null"],
                "description": "architecture of a custom model (parameters_b, layers, "
                "kv_heads, head_dim, attention_heads, max_context; hidden_size, "
                "intermediate_size, vocab_size to size LoRA adapters)",
            },
            "custom_model_id": {
                "type": ["string", "null"],
                "description": "the Hugging Face id vLLM serves for a custom model",
            },
            "lora_adapters": {
                "type": ["array", "null"],
                "description": "the LoRA adapters ({name, source, rank}): one GPU slot each",
            },
        },
    }
    output_schema = {
        "type": "object",
        "properties": {
            "weights_gb": {"type": "number"},
            "kv_cache_gb": {"type": "number"},
            "gpus": {"type": "integer"},
            "tensor_parallel_size": {"type": "integer"},
            "fits": {"type": "boolean"},
            "reason": {"type": "string"},
            "max_model_len": {"type": "integer"},
            "gpu_memory_utilization": {"type": "number"},
            "kv_cache_dtype": {"type": "string"},
            "checkpoint": {"type": "string"},
            "vllm_quantization": {"type": "string"},
            "max_loras": {"type": "integer"},
            "max_lora_rank": {"type": "integer"},
            "lora_gb": {"type": "number"},
            "gpu_product_label": {"type": "string"},
        },
    }

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        try:
            result = _size(input)
        except _InputProblem as problem:
            return [FieldError(PARAMETER_OF_INPUT[problem.field], problem.message)]
        except UnprocessableError as exc:
            return [
                FieldError(PARAMETER_OF_INPUT.get(d.path, f"parameters.{d.path}"), d.message)
                for d in exc.details
            ]
        if result.fits:
            return []
        return [FieldError(PARAMETER_OF_INPUT["gpu"], result.reason)]

    def preview(self, input: dict[str, Any]) -> dict[str, Any] | None:
        """The whole sizing (arithmetic, alternatives) for the form's panel; None when the
        input cannot be sized (precheck names the field)."""
        try:
            return _size(input).as_dict()
        except (_InputProblem, UnprocessableError):
            return None

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        try:
            result = _size(input)
        except _InputProblem as problem:
            raise ActionError(f"{problem.field}: {problem.message}") from None
        except UnprocessableError as exc:
            raise ActionError(exc.message) from None
        ctx.log(f"GPU sizing: {result.reason}")
        if not result.fits:
            raise ActionError(result.reason)
        needs = custom_model_needs(result.quantization) if input.get("model_spec") else None
        if needs and _custom_model(input) is not None:
            ctx.log(f"custom model {result.checkpoint} must be {needs}")
        quantization = f" --quantization {result.vllm_quantization}" * bool(
            result.vllm_quantization
        )
        ctx.log(f"vLLM serves {result.checkpoint}{quantization}")
        return _output(result)
