"""``rag:sizing``: GPU count and vLLM settings for the form's model, quantization and GPU.

Its output feeds ``fetch:cookiecutter`` (``gpus``, ``tensor_parallel_size``,
``max_model_len``, ``gpu_memory_utilization``, ``kv_cache_dtype``), and its ``precheck``
refuses an impossible combination at submit time, saying what would fit.
"""

from __future__ import annotations

from typing import Any

from catalog.errors import UnprocessableError
from portal_backend.rag.sizing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_CONTEXT,
    GPU_CLASSES,
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
    "model_spec": "parameters.model",
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
    try:
        return ModelSpec(
            id=str(input.get("model", "custom")),
            hf_id=str(spec.get("hf_id", input.get("model", ""))),
            parameters_b=float(spec["parameters_b"]),
            layers=int(spec["layers"]),
            kv_heads=int(spec["kv_heads"]),
            head_dim=int(spec["head_dim"]),
            attention_heads=int(spec.get("attention_heads", spec["kv_heads"])),
            # Unknown context window: leave the check to vLLM, up to the form's maximum.
            max_context=int(spec.get("max_context", CUSTOM_MODEL_MAX_CONTEXT)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _InputProblem(
            "model_spec",
            "model_spec needs numbers parameters_b, layers, kv_heads, head_dim "
            f"(optional attention_heads, max_context): {exc}",
        ) from None


def _size(input: dict[str, Any]) -> SizingResult:
    return size_deployment(
        model=str(input.get("model", "")),
        quantization=str(input.get("quantization", "")),
        gpu=str(input.get("gpu", "")),
        max_context=_as_int(input, "max_context", DEFAULT_MAX_CONTEXT),
        concurrency=_as_int(input, "concurrency", DEFAULT_CONCURRENCY),
        max_gpus=_as_int(input, "max_gpus", MAX_GPUS_PER_NODE),
        custom_model=_custom_model(input),
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
                "kv_heads, head_dim, attention_heads, max_context)",
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
        return _output(result)
