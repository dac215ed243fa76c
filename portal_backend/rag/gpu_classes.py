"""The GPU classes a RAG service can run on: the one definition.

Everything that names a GPU class reads it from here: the template's form enum (a test
holds ``scaffolder_templates/rag-service/template.yaml`` to ``GPU_CLASSES``), GPU sizing
(memory, native FP8), vLLM's kernel requirements (compute capability), the node label
the vLLM Deployment selects (``product_label``), and the portal's price table
(``price_item`` and its default price in ``sla.costs.DEFAULT_PRICES``).

Prices resolve as ``sla.resources.gpu_price`` does for a running workload: from the
product label its pods were scheduled with. ``price_item`` is the item that label
resolves to in the default table, so an admin who prices ``gpu:nvidia-h200`` prices
every H200 service, rendered dashboards and the portal's cost model alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuClass:
    id: str  # the form's value
    memory_gb: float
    # Ada and Hopper run FP8 natively; vLLM's fp8 KV cache is used only there.
    native_fp8: bool
    # CUDA compute capability x 10 (8.9 -> 89): vLLM's kernels state a minimum.
    compute_capability: int
    # The label NVIDIA's GPU feature discovery puts on nodes (nodeSelector).
    product_label: str
    # The price-table item for this class, and its price until an admin sets the table.
    price_item: str
    default_usd_per_gpu_hour: float


GPU_CLASSES: dict[str, GpuClass] = {
    c.id: c
    for c in (
        GpuClass("L4", 24, True, 89, "NVIDIA-L4", "gpu:nvidia-l4", 0.80),
        GpuClass("A10G", 24, False, 86, "NVIDIA-A10G", "gpu:nvidia-a10g", 1.00),
        # "A100" alone (GKE's nvidia-tesla-a100, older price tables) is the 40 GB part.
        GpuClass("A100-40GB", 40, False, 80, "NVIDIA-A100-SXM4-40GB", "gpu:nvidia-a100", 3.00),
        GpuClass("A100-80GB", 80, False, 80, "NVIDIA-A100-SXM4-80GB", "gpu:nvidia-a100-80gb", 3.70),
        GpuClass("H100", 80, True, 90, "NVIDIA-H100-80GB-HBM3", "gpu:nvidia-h100", 4.50),
        GpuClass("H200", 141, True, 90, "NVIDIA-H200", "gpu:nvidia-h200", 6.00),
    )
}

# Spellings people use for the same class ("a100-80", "A100_80GB", "h100-80gb").
_ALIASES = {
    "A100-40": "A100-40GB",
    "A100-80": "A100-80GB",
    "H100-80GB": "H100",
    "H100-80": "H100",
    "H200-141GB": "H200",
    "H200-141": "H200",
}


def normalize_gpu(gpu: str) -> str | None:
    """The class id for a spelling of it, or None when it names no known class."""
    key = gpu.strip().upper().replace("_", "-").replace(" ", "-")
    if key in GPU_CLASSES:
        return key
    return _ALIASES.get(key)


# Words that name the vendor, not the GPU: "NVIDIA-L4" and "L4" are the same class.
_VENDOR_WORDS = {"nvidia", "tesla", "geforce"}


def name_words(name: str) -> set[str]:
    """The words of a GPU's name that tell GPUs apart, lower case, vendor words dropped:
    ``NVIDIA-A100-SXM4-80GB`` -> ``{"a100", "sxm4", "80gb"}``."""
    return {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w} - _VENDOR_WORDS


def names_match(general: str, specific: str) -> bool:
    """Whether ``specific`` names a GPU of the class ``general`` names (every word of
    ``general`` is in it): ``A100-80GB`` matches ``NVIDIA-A100-SXM4-80GB`` (a node label)
    and ``nvidia-a100`` (a price item) matches it too; ``L4`` does not match ``L40S``."""
    words = name_words(general)
    return bool(words) and words <= name_words(specific)


def default_gpu_prices() -> dict[str, float]:
    """``price item -> $ per GPU-hour`` of every class, for the default price table."""
    return {c.price_item: c.default_usd_per_gpu_hour for c in GPU_CLASSES.values()}
