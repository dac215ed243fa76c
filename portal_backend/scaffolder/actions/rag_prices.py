"""``rag:gpu-price``: the portal's current price of the chosen GPU class, at render time.

The portal's price table (``PUT /api/sla/prices``, else ``sla.costs.DEFAULT_PRICES``) is
the only one. This step reads it when the repository is rendered and hands the
$/GPU-hour to ``fetch:cookiecutter`` (``gpu_hourly_usd``), so the generated Prometheus
cost rules and the Grafana dashboard that reads them price GPUs exactly as the portal's
cost model does for the same Deployment. A price change reaches every repository
rendered (or re-rendered) after it.
"""

from __future__ import annotations

from typing import Any

from portal_backend.db import session_scope
from portal_backend.rag.gpu_classes import GPU_CLASSES, normalize_gpu
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.settings import Settings
from portal_backend.sla import costs


def _gpu_class(input: dict[str, Any]) -> str | None:
    return normalize_gpu(str(input.get("gpu") or ""))


def price_output(prices: dict[str, float], gpu: str) -> dict[str, Any]:
    """The step's output for a price table and a form GPU class."""
    item, usd = costs.gpu_class_price(prices, gpu)
    return {"gpu": gpu, "price_item": item, "usd_per_gpu_hour": usd}


@register
class RagGpuPriceAction(Action):
    id = "rag:gpu-price"
    description = (
        "Reads the portal's price of a GPU class ($ per GPU-hour, from the admin price "
        "table or the defaults) for the generated cost rules and dashboard."
    )
    input_schema = {
        "type": "object",
        "required": ["gpu"],
        "properties": {
            "gpu": {"type": "string", "description": f"one of {', '.join(GPU_CLASSES)}"},
        },
    }
    output_schema = {
        "type": "object",
        "properties": {
            "gpu": {"type": "string"},
            "price_item": {"type": "string"},
            "usd_per_gpu_hour": {"type": "number"},
        },
    }

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        if _gpu_class(input) is None:
            return [
                FieldError(
                    "parameters.gpu_class",
                    f"unknown GPU class '{input.get('gpu')}'; allowed: {', '.join(GPU_CLASSES)}",
                )
            ]
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        gpu = _gpu_class(input)
        if gpu is None:
            raise ActionError(
                f"unknown GPU class '{input.get('gpu')}'; allowed: {', '.join(GPU_CLASSES)}"
            )
        with session_scope(ctx.session_factory) as session:
            output = price_output(costs.get_prices(session), gpu)
        ctx.log(
            f"GPU price: {gpu} at {output['usd_per_gpu_hour']:g} USD/GPU-hour "
            f"({output['price_item']} of the portal's price table)"
        )
        return output
