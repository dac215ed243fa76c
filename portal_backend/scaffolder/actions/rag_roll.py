"""rag:roll-version: commit a service's switch to another model or LoRA adapter version
(``portal_backend.rag.rollout``), on a branch or on its default branch, and record it on
the service's entity. Refused, naming both sides, before anything is written when the
version does not fit the service (base model, --max-lora-rank)."""

from __future__ import annotations

from typing import Any

from catalog.errors import PortalError
from portal_backend.rag import rollout
from portal_backend.scaffolder.actions.base import Action, ActionContext, ActionError, register
from portal_backend.scaffolder.actions.rag_provision import flag


@register
class RagRollVersionAction(Action):
    id = "rag:roll-version"
    description = (
        "Changes the model or a LoRA adapter version a RAG service serves: one commit "
        "(serving/vllm-args.json and catalog-info.yaml) on a branch or on the default "
        "branch, recorded on the entity (status.modelVersions)."
    )
    input_schema = {
        "type": "object",
        "required": ["entityRef", "version"],
        "properties": {
            "entityRef": {"type": "string"},
            "version": {"type": "string"},
            "onDefaultBranch": {"type": ["boolean", "string"], "default": False},
        },
    }
    output_schema = {
        "type": "object",
        "properties": {
            k: {}
            for k in (
                "service",
                "branch",
                "commit",
                "onDefaultBranch",
                "from",
                "to",
                "repoContentsUrl",
            )
        },
    }

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        if ctx.dry_run:
            ctx.log(f"dry run: {input['entityRef']} would be rolled to {input['version']}")
            return {}
        try:
            return rollout.roll(
                ctx.settings,
                ctx.session_factory,
                entity_ref=str(input["entityRef"]),
                target_ref=rollout.check_target(input["version"]),
                on_default_branch=flag(input.get("onDefaultBranch", False)),
                user_ref=ctx.user_ref,
                log=ctx.log,
            )
        except (PortalError, rollout.RollError) as exc:
            raise ActionError(str(exc)) from exc
