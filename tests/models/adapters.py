"""Real LoRA adapters for the tests, made with peft on a tiny Llama built from a config
(no download): versions with known changes, saved as safetensors the way peft saves them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

HIDDEN = 64
LAYERS = 2


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


@dataclass
class Made:
    path: Path
    # module (model.layers.N.self_attn.q_proj) -> the delta weight peft applies (float64)
    deltas: dict[str, torch.Tensor]


def make_adapter(
    path: Path,
    *,
    rank: int,
    alpha: int,
    modules: list[str],
    seed: int,
    start_from: Path | None = None,
    nudge: dict[str, float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Made:
    """A peft adapter saved under ``path``; ``start_from`` loads another version's weights
    first, ``nudge`` adds ``value`` to the lora_B of the named modules (a known change)."""
    base = tiny_llama().to(dtype)
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=modules, init_lora_weights=False)
    # autocast_adapter_dtype=False: the adapter keeps the base dtype (bfloat16 stays bfloat16).
    model = get_peft_model(base, config, autocast_adapter_dtype=False)
    if start_from is not None:
        set_peft_model_state_dict(model, load_file(str(start_from / "adapter_model.safetensors")))
    with torch.no_grad():
        for module, value in (nudge or {}).items():
            layer = model.base_model.model.get_submodule(module)
            layer.lora_B["default"].weight += value
    model.save_pretrained(str(path))
    deltas: dict[str, Any] = {}
    for name, layer in model.base_model.model.named_modules():
        if hasattr(layer, "get_delta_weight") and "default" in getattr(layer, "lora_A", {}):
            deltas[name] = layer.get_delta_weight("default").detach().to(torch.float64)
    return Made(path, deltas)


def adapter_entity(
    name: str,
    version: str,
    source: str,
    *,
    rank: int,
    alpha: int,
    modules: list[str],
    base: str = "resource:default/tiny-llama-v1",
    previous: str | None = None,
    scores: dict[str, float] | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "lora-adapter",
        "owner": "group:default/ml",
        "version": version,
        "baseModel": base,
        "source": source,
        "format": "safetensors",
        "rank": rank,
        "alpha": alpha,
        "targetModules": modules,
        "dataset": "resource:default/hr-faq",
    }
    if previous:
        spec["previousVersion"] = previous
    if scores:
        spec["evalScores"] = scores
    if family:
        spec["family"] = family
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": {"name": name},
        "spec": spec,
    }


def model_entity(
    name: str, version: str, source: str, previous: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "llm-model",
        "owner": "group:default/ml",
        "version": version,
        "source": source,
        "format": "safetensors",
        "parameters": "0.2M",
        "quantization": "fp32",
    }
    if previous:
        spec["previousVersion"] = previous
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": {"name": name},
        "spec": spec,
    }
