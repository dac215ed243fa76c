"""GPU sizing over HTTP: ``GET /api/rag/sizing`` (read scope); the arithmetic is domain code."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from portal_backend.auth.service import Principal
from portal_backend.deps import ReadPrincipal
from portal_backend.rag.gpu_classes import GPU_CLASSES
from portal_backend.rag.sizing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_CONTEXT,
    MAX_GPUS_PER_NODE,
    size_deployment,
)

router = APIRouter(prefix="/api/rag", tags=["rag"])


@router.get("/sizing")
def sizing(
    model: str = Query(description="model id, e.g. llama-3-8b-instruct"),
    quantization: str = Query(description="bf16, fp8, awq or gptq"),
    gpu: str = Query(description=f"GPU class: {', '.join(GPU_CLASSES)}"),
    max_context: int = Query(default=DEFAULT_MAX_CONTEXT, description="max model length"),
    concurrency: int = Query(
        default=DEFAULT_CONCURRENCY, description="full-length sequences resident at once"
    ),
    max_gpus: int = Query(default=MAX_GPUS_PER_NODE, description="GPUs available on one node"),
    lora_rank: list[int] = Query(
        default=[], description="one per LoRA adapter: its rank (repeat the parameter)"
    ),
    principal: Principal = ReadPrincipal,
) -> dict[str, Any]:
    return size_deployment(
        model, quantization, gpu, max_context, concurrency, max_gpus, lora_ranks=lora_rank
    ).as_dict()
