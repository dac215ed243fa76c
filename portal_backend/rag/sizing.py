"""GPU sizing for serving a Llama 3 model with vLLM: how many GPUs of a class, which TP.

The arithmetic is deliberately simple and printed in ``reason`` so a person can check
it by hand:

- weights = parameters x bytes per parameter (bf16 2, fp8 1, AWQ/GPTQ int4 ~0.52, the
  extra over 0.5 being group scales and the unquantized embeddings/head);
- KV cache per token = 2 (K and V) x layers x KV heads x head dim x bytes per element;
  the KV cache needed = that x max_context x concurrency, where ``concurrency`` is the
  number of sequences of full ``max_context`` length that must be resident at once
  (vLLM itself refuses to start unless at least one fits);
- usable memory per GPU = GPU memory x gpu_memory_utilization (0.9) - runtime overhead
  (CUDA context, NCCL buffers, activation peak, CUDA graphs; 1.5 GB per GPU);
- LoRA adapters: vLLM keeps ``--max-loras`` adapter slots of ``--max-lora-rank`` on
  every GPU, for each linear layer (A: rank x input, B: output x rank; q/k/v and
  gate/up stacked) and for the embeddings and LM head (rank x (2 x vocab + 2 x hidden),
  plus 256 extra-vocab rows x hidden), in bf16. Counted whole on each GPU of the
  tensor-parallel group (vLLM shards B but replicates A): slightly more than vLLM needs;
- the tensor-parallel size is the smallest power of two (it must divide the attention
  and KV head counts) whose GPUs together hold weights + KV cache + LoRA, on one node.

All sizes are decimal GB (1e9 bytes), like the GPU classes' nominal memory, which is
conservative: an "80 GB" H100 holds about 85.5e9 bytes.

Pure domain code: raises ``UnprocessableError`` naming the bad field and the allowed
values; nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog.errors import ErrorDetail, UnprocessableError
from portal_backend.rag.checkpoints import checkpoint_for
from portal_backend.rag.gpu_classes import GPU_CLASSES, GpuClass, normalize_gpu

GB = 1e9
GPU_MEMORY_UTILIZATION = 0.9
RUNTIME_OVERHEAD_GB = 1.5
MAX_GPUS_PER_NODE = 8
DEFAULT_MAX_CONTEXT = 8192
DEFAULT_CONCURRENCY = 1
MAX_CONCURRENCY = 1024
MIN_CONTEXT = 256
# vLLM 0.10.1.1's LoRAConfig accepts these max_lora_rank values (held against its source
# by tests/deploy_bundle/test_vllm_contract.py); an adapter's rank must not exceed it.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_LORA_RANK = 16
LORA_EXTRA_VOCAB = 256  # vLLM's default lora_extra_vocab_size
LORA_BYTES = 2  # adapters are held in the model's bf16
# Architecture facts LoRA sizing needs beyond the KV cache's.
LORA_FIELDS = ("hidden_size", "intermediate_size", "vocab_size", "attention_heads")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    hf_id: str
    parameters_b: float
    layers: int
    kv_heads: int
    head_dim: int
    attention_heads: int
    max_context: int
    # Needed only to size LoRA adapters (None: unknown for a custom model).
    hidden_size: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None

    def kv_bytes_per_token(self, bytes_per_element: float) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_element

    def lora_bytes_per_slot(self, rank: int) -> float:
        """GPU bytes of one LoRA slot at ``rank`` (see the module docstring)."""
        assert self.hidden_size and self.intermediate_size and self.vocab_size
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.attention_heads * self.head_dim, self.kv_heads * self.head_dim
        # (A inputs + B outputs) per layer: qkv 3h + q + 2kv, o q + h, gate_up 2h + 2i, down i + h.
        per_layer = 7 * h + 2 * q + 2 * kv + 3 * i
        head = 2 * self.vocab_size + 2 * h
        elements = rank * (self.layers * per_layer + head) + LORA_EXTRA_VOCAB * h
        return elements * LORA_BYTES


MODELS: dict[str, ModelSpec] = {
    "llama-3-8b-instruct": ModelSpec(
        id="llama-3-8b-instruct",
        hf_id="meta-llama/Meta-Llama-3-8B-Instruct",
        parameters_b=8.03,
        layers=32,
        kv_heads=8,
        head_dim=128,
        attention_heads=32,
        max_context=8192,
        hidden_size=4096,
        intermediate_size=14336,
        vocab_size=128256,
    ),
    "llama-3-70b-instruct": ModelSpec(
        id="llama-3-70b-instruct",
        hf_id="meta-llama/Meta-Llama-3-70B-Instruct",
        parameters_b=70.55,
        layers=80,
        kv_heads=8,
        head_dim=128,
        attention_heads=64,
        max_context=8192,
        hidden_size=8192,
        intermediate_size=28672,
        vocab_size=128256,
    ),
}

# Bytes per parameter of the weights.
QUANTIZATIONS: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "awq": 0.52, "gptq": 0.52}
# Quality order used when suggesting a quantization that fits: best first.
_QUALITY_ORDER = ("bf16", "fp8", "awq", "gptq")


@dataclass(frozen=True)
class Alternative:
    gpu: str
    quantization: str
    gpus: int


@dataclass(frozen=True)
class SizingResult:
    model: str
    quantization: str
    gpu: str
    weights_gb: float
    kv_cache_gb: float
    kv_bytes_per_token: int
    usable_gb_per_gpu: float
    gpus: int
    tensor_parallel_size: int
    fits: bool
    reason: str
    max_model_len: int
    gpu_memory_utilization: float
    kv_cache_dtype: str
    # What vLLM serves: the checkpoint and its --quantization value ("" for none).
    checkpoint: str = ""
    vllm_quantization: str = ""
    # LoRA slots: --max-loras (0: LoRA off) and --max-lora-rank, and their GPU memory.
    max_loras: int = 0
    max_lora_rank: int = DEFAULT_LORA_RANK
    lora_gb: float = 0.0
    # The node label of the GPU class (the vLLM Deployment's nodeSelector).
    gpu_product_label: str = ""
    alternatives: list[Alternative] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_inputs(
    model: str,
    quantization: str,
    gpu: str,
    max_context: int,
    concurrency: int,
    max_gpus: int,
    custom_model: ModelSpec | None = None,
    lora_ranks: Sequence[int] = (),
) -> tuple[ModelSpec, str, GpuClass]:
    """Checks every input; all problems at once, each naming the field and what is allowed."""
    problems: list[ErrorDetail] = []
    for index, rank in enumerate(lora_ranks):
        if rank not in LORA_RANKS:
            problems.append(
                ErrorDetail(
                    f"lora_adapters.{index}.rank",
                    f"{rank} is not a rank vLLM serves; allowed: "
                    + ", ".join(map(str, LORA_RANKS)),
                )
            )
    if lora_ranks and custom_model is not None:
        missing = [f for f in LORA_FIELDS if not getattr(custom_model, f)]
        if missing:
            problems.append(
                ErrorDetail(
                    "model_spec",
                    "LoRA adapters on a custom model need its "
                    + ", ".join(missing)
                    + " (config.json) to size the adapters' GPU memory",
                )
            )
    spec = custom_model or MODELS.get(model.strip().lower())
    if spec is None:
        problems.append(
            ErrorDetail("model", f"unknown model '{model}'; allowed: {', '.join(MODELS)}")
        )
    quant = quantization.strip().lower()
    if quant not in QUANTIZATIONS:
        problems.append(
            ErrorDetail(
                "quantization",
                f"unknown quantization '{quantization}'; allowed: {', '.join(QUANTIZATIONS)}",
            )
        )
    gpu_id = normalize_gpu(gpu)
    if gpu_id is None:
        problems.append(
            ErrorDetail("gpu", f"unknown GPU class '{gpu}'; allowed: {', '.join(GPU_CLASSES)}")
        )
    limit = spec.max_context if spec else max(m.max_context for m in MODELS.values())
    if not MIN_CONTEXT <= max_context <= limit:
        problems.append(
            ErrorDetail(
                "max_context",
                f"{max_context} is out of range; allowed: {MIN_CONTEXT} to {limit} tokens"
                + (f" (the context window of {spec.id})" if spec else ""),
            )
        )
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(
            ErrorDetail(
                "concurrency", f"{concurrency} is out of range; allowed: 1 to {MAX_CONCURRENCY}"
            )
        )
    if not 1 <= max_gpus <= MAX_GPUS_PER_NODE:
        problems.append(
            ErrorDetail(
                "max_gpus",
                f"{max_gpus} is out of range; allowed: 1 to {MAX_GPUS_PER_NODE} (one node)",
            )
        )
    if problems:
        summary = "; ".join(f"{p.path}: {p.message}" for p in problems)
        raise UnprocessableError(f"Invalid sizing input: {summary}", problems)
    assert spec is not None and gpu_id is not None
    return spec, quant, GPU_CLASSES[gpu_id]


def kv_cache_dtype_for(quantization: str, gpu: GpuClass) -> str:
    """FP8 KV cache where the weights are FP8 and the GPU runs FP8 natively; else auto."""
    return "fp8" if quantization == "fp8" and gpu.native_fp8 else "auto"


def _tp_candidates(spec: ModelSpec, limit: int) -> list[int]:
    return [
        tp
        for tp in (1, 2, 4, 8)
        if tp <= limit and spec.attention_heads % tp == 0 and spec.kv_heads % tp == 0
    ]


def _usable_gb(gpu: GpuClass) -> float:
    return gpu.memory_gb * GPU_MEMORY_UTILIZATION - RUNTIME_OVERHEAD_GB


def _needed_gb(
    spec: ModelSpec, quant: str, gpu: GpuClass, max_context: int, concurrency: int
) -> tuple[float, float, int]:
    weights = spec.parameters_b * 1e9 * QUANTIZATIONS[quant] / GB
    kv_element = 1.0 if kv_cache_dtype_for(quant, gpu) == "fp8" else 2.0
    per_token = int(spec.kv_bytes_per_token(kv_element))
    kv = per_token * max_context * concurrency / GB
    return weights, kv, per_token


def lora_gb(spec: ModelSpec, max_loras: int, rank: int) -> float:
    """GPU memory of ``max_loras`` adapter slots of ``rank`` on one GPU (0 without LoRA)."""
    return max_loras * spec.lora_bytes_per_slot(rank) / GB if max_loras else 0.0


def _smallest_tp(
    spec: ModelSpec,
    quant: str,
    gpu: GpuClass,
    max_context: int,
    concurrency: int,
    limit: int,
    lora: float = 0.0,
) -> int | None:
    weights, kv, _ = _needed_gb(spec, quant, gpu, max_context, concurrency)
    for tp in _tp_candidates(spec, limit):
        # Weights and KV cache split over the group; the LoRA slots sit on every GPU.
        if weights + kv + tp * lora <= tp * _usable_gb(gpu):
            return tp
    return None


def _alternatives(
    spec: ModelSpec,
    quant: str,
    gpu: GpuClass,
    max_context: int,
    concurrency: int,
    lora: float = 0.0,
) -> list[Alternative]:
    """Combinations that fit on one node: same quantization elsewhere, other on this GPU."""
    found: list[Alternative] = []
    for other in sorted(GPU_CLASSES.values(), key=lambda g: -g.memory_gb):
        tp = _smallest_tp(spec, quant, other, max_context, concurrency, MAX_GPUS_PER_NODE, lora)
        if tp is not None:
            found.append(Alternative(other.id, quant, tp))
    for other_quant in _QUALITY_ORDER:
        if other_quant == quant:
            continue
        tp = _smallest_tp(spec, other_quant, gpu, max_context, concurrency, MAX_GPUS_PER_NODE, lora)
        if tp is not None:
            found.append(Alternative(gpu.id, other_quant, tp))
    return found


def describe_alternatives(
    model: str, quantization: str, gpu: str, alternatives: list[Alternative]
) -> str:
    """'70B bf16 needs 2 x H200 or 4 x H100; on L4 try awq with 2 GPUs or fp8 with 4'."""
    same_quant = [a for a in alternatives if a.quantization == quantization]
    same_gpu = [a for a in alternatives if a.gpu == gpu and a.quantization != quantization]
    parts: list[str] = []
    if same_quant:
        options = [f"{a.gpus} x {a.gpu}" for a in sorted(same_quant, key=lambda a: a.gpus)]
        parts.append(f"{model} {quantization} needs >= " + " or ".join(options))
    else:
        parts.append(f"{model} {quantization} fits on no single node of up to 8 GPUs")
    if same_gpu:
        options = [f"{a.quantization} with {a.gpus} GPU{'s' * (a.gpus > 1)}" for a in same_gpu]
        parts.append(f"on {gpu} try " + " or ".join(options))
    else:
        parts.append(f"no quantization fits on {MAX_GPUS_PER_NODE} x {gpu}")
    return "; ".join(parts)


def size_deployment(
    model: str,
    quantization: str,
    gpu: str,
    max_context: int = DEFAULT_MAX_CONTEXT,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_gpus: int = MAX_GPUS_PER_NODE,
    custom_model: ModelSpec | None = None,
    lora_ranks: Sequence[int] = (),
) -> SizingResult:
    """How many GPUs of class ``gpu`` one vLLM replica needs, with the arithmetic.

    ``custom_model`` sizes a model outside ``MODELS`` from its architecture facts (its
    ``hf_id`` is the checkpoint served). ``lora_ranks`` holds one rank per LoRA adapter:
    every adapter gets a GPU slot (``--max-loras``) at the largest rank (``--max-lora-rank``).
    """
    spec, quant, gpu_class = resolve_inputs(
        model, quantization, gpu, max_context, concurrency, max_gpus, custom_model, lora_ranks
    )
    weights, kv, per_token = _needed_gb(spec, quant, gpu_class, max_context, concurrency)
    usable = _usable_gb(gpu_class)
    max_loras = len(lora_ranks)
    max_rank = max(lora_ranks, default=DEFAULT_LORA_RANK)
    lora = lora_gb(spec, max_loras, max_rank)
    needed = weights + kv
    kv_dtype = kv_cache_dtype_for(quant, gpu_class)
    kv_element = 1 if kv_dtype == "fp8" else 2
    lora_text = (
        f"LoRA {max_loras} slot{'s' * (max_loras > 1)} x rank {max_rank} = {lora:.2f} GB "
        "on each GPU; "
        if max_loras
        else ""
    )
    arithmetic = (
        f"weights {spec.parameters_b} B params x {QUANTIZATIONS[quant]} B = {weights:.2f} GB; "
        f"KV cache 2 x {spec.layers} layers x {spec.kv_heads} KV heads x {spec.head_dim} "
        f"head dim x {kv_element} B = {per_token} B/token x {max_context} tokens x "
        f"{concurrency} sequence{'s' * (concurrency > 1)} = {kv:.2f} GB; {lora_text}"
        f"needed {needed:.2f} GB{f' + {lora:.2f} GB LoRA per GPU' if max_loras else ''}; "
        f"usable per {gpu_class.id} = {gpu_class.memory_gb:g} GB x "
        f"{GPU_MEMORY_UTILIZATION} - {RUNTIME_OVERHEAD_GB} GB overhead = {usable:.2f} GB"
    )
    tp = _smallest_tp(spec, quant, gpu_class, max_context, concurrency, max_gpus, lora)
    if tp is not None:
        reason = (
            f"{arithmetic}; fits on {tp} x {gpu_class.id} "
            f"(tensor parallel {tp}, {tp * usable:.2f} GB usable)"
        )
        alternatives: list[Alternative] = []
        fits = True
        gpus = tp
    else:
        alternatives = _alternatives(spec, quant, gpu_class, max_context, concurrency, lora)
        node_tp = _smallest_tp(
            spec, quant, gpu_class, max_context, concurrency, MAX_GPUS_PER_NODE, lora
        )
        biggest = _tp_candidates(spec, max_gpus)[-1]
        reason = (
            f"{arithmetic}; does not fit on {biggest} x {gpu_class.id} "
            f"({biggest * usable:.2f} GB usable, max_gpus={max_gpus}). "
            + describe_alternatives(spec.id, quant, gpu_class.id, alternatives)
        )
        fits = False
        # The count this GPU class would need on one node, 0 when no node is enough.
        gpus = node_tp or 0
    served = checkpoint_for(spec.id, quant, spec.hf_id if custom_model else None)
    return SizingResult(
        model=spec.id,
        quantization=quant,
        gpu=gpu_class.id,
        weights_gb=round(weights, 2),
        kv_cache_gb=round(kv, 2),
        kv_bytes_per_token=per_token,
        usable_gb_per_gpu=round(usable, 2),
        gpus=gpus,
        tensor_parallel_size=gpus,
        fits=fits,
        reason=reason,
        max_model_len=max_context,
        gpu_memory_utilization=GPU_MEMORY_UTILIZATION,
        kv_cache_dtype=kv_dtype,
        checkpoint=served.hf_id,
        vllm_quantization=served.vllm_quantization or "",
        max_loras=max_loras,
        max_lora_rank=max_rank,
        lora_gb=round(lora, 2),
        gpu_product_label=gpu_class.product_label,
        alternatives=alternatives,
    )
