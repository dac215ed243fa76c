"""Which form fields feed the live GPU sizing, found by the values they offer.

Templates name their fields as they like; a field whose enum lists known models, GPU
classes or quantizations is the one the sizing call needs.
"""

from __future__ import annotations

from typing import Any

from portal_backend.rag.gpu_classes import GPU_CLASSES
from portal_backend.rag.sizing import MODELS, QUANTIZATIONS

_NUMERIC = {
    "max_context": ("max_context", "max_model_len", "context_length"),
    "concurrency": ("concurrency",),
}


def sizing_fields(pages: list[dict[str, Any]]) -> dict[str, str] | None:
    """Sizing query parameter -> form field name, or None when the form has no model field."""
    found: dict[str, str] = {}
    known = {"model": set(MODELS), "gpu": set(GPU_CLASSES), "quantization": set(QUANTIZATIONS)}
    for page in pages:
        for name, prop in ((page.get("schema") or {}).get("properties") or {}).items():
            if not isinstance(prop, dict):
                continue
            enum = {str(v) for v in prop.get("enum") or []}
            for param, values in known.items():
                # Most of the choices are known values ("custom" may be one more).
                if enum and len(enum & values) * 2 > len(enum) and param not in found:
                    found[param] = name
            for param, names in _NUMERIC.items():
                if name in names and param not in found:
                    found[param] = name
    return found if "model" in found else None
