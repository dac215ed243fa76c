"""``rag:catalog-versions``: the catalog's llm-model and lora-adapter versions a new RAG
service serves, for its Component's ``dependsOn`` (issue 20).

The model version is the one whose ``spec.source`` is the checkpoint served; each LoRA
entry names the version the form's picker chose (``version``), or else the adapter version
whose source it serves. A chosen version trained on another base model, or of a rank
above the service's LoRA slots, is refused at submit naming both sides, before anything
exists (``portal_backend.rag.adapters.served_versions_for_form``). Versions that are not
in the catalog are simply not named.
"""

from __future__ import annotations

from typing import Any

from portal_backend.db import session_scope
from portal_backend.rag import adapters
from portal_backend.scaffolder import catalog_port
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.settings import Settings


def _served(session: Any, input: dict[str, Any]) -> adapters.ServedVersions:
    loras = input.get("lora_adapters") or []
    return adapters.served_versions_for_form(
        session,
        service=str(input.get("service") or ""),
        model=str(input.get("model") or ""),
        quantization=str(input.get("quantization") or "bf16"),
        custom_model_id=str(input.get("custom_model_id") or "") or None,
        lora_adapters=list(loras) if isinstance(loras, list) else [],
    )


@register
class RagCatalogVersionsAction(Action):
    id = "rag:catalog-versions"
    description = (
        "The catalog's llm-model and lora-adapter versions a new RAG service serves (for "
        "its Component's dependsOn); a picked adapter version that does not fit the "
        "service's model or LoRA rank is refused at submit."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "service": {"type": "string"},
            "model": {"type": "string"},
            "quantization": {"type": "string"},
            "custom_model_id": {"type": ["string", "null"]},
            "lora_adapters": {"type": "array", "items": {"type": "object"}},
        },
    }
    output_schema = {
        "type": "object",
        "properties": {"refs": {"type": "array", "items": {"type": "string"}}},
    }

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        if not catalog_port.catalog_available():
            return []
        with session_scope(catalog_port.factory_for(settings)) as session:
            served = _served(session, input)
        return [FieldError(f"parameters.{p.path}", p.message) for p in served.problems]

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        with session_scope(ctx.session_factory) as session:
            served = _served(session, input)
        if served.problems and not ctx.dry_run:
            raise ActionError("; ".join(p.message for p in served.problems))
        for problem in served.problems:  # a dry run (e.g. an upgrade's render) goes on
            ctx.log(f"not named in dependsOn: {problem.message}")
        for note in served.notes:
            ctx.log(note)
        if not served.refs:
            ctx.log("no llm-model or lora-adapter version of the catalog is served")
        return {"refs": served.refs}
