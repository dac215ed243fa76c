"""template:upgrade: merge a template's changes between two recorded versions into a
service's repository, on the branch ``rag-portal/upgrade-<version>``.

Renders the recorded version and the target version with the service's answers (the
template's own steps, as a dry run), three-way merges the difference into the tree of
the repository's default branch with git (``scaffolder.three_way``), writes the new
answers file, and pushes one commit on top of the default branch as the upgrade branch.
Each file is listed as merged, added, deleted or conflicted (with git's conflict
markers in the branch). Running it again for the same version and default branch
pushes nothing.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import session_scope
from portal_backend.provisioning.repo_checkout import CheckoutError, parse_contents_url
from portal_backend.scaffolder import answers, rendering, version_store
from portal_backend.scaffolder.actions.base import Action, ActionContext, ActionError, register
from portal_backend.scaffolder.rendering import RenderError
from portal_backend.scaffolder.three_way import (
    TRAILER,
    MergeError,
    UpgradeRepository,
    branch_name,
    is_portal_commit,
)
from portal_backend.scaffolder.upgrade_tables import TemplateUpgrade
from portal_backend.scaffolder.upgrades import release


def _still_ours(factory: sessionmaker[Session], upgrade_id: str, entity_ref: str) -> None:
    """A retried task must not run over an upgrade started after it ended."""
    with session_scope(factory) as session:
        row = session.get(TemplateUpgrade, upgrade_id)
        if row is None or row.active_ref != entity_ref:
            raise ActionError(
                f"another upgrade of {entity_ref} was started after this one ended; "
                "start a new upgrade instead of retrying this one"
            )


def _message(data: dict[str, Any], result: str, changes: list[Any], task_id: str) -> str:
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.status] = counts.get(change.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no file"
    lines = [
        f"Upgrade {data['templateRef']} from {data['fromVersion']} to {data['toVersion']}",
        "",
        f"{summary}.",
        *(
            ["Conflict markers are in the files listed as conflicted."]
            if result == "conflicts"
            else []
        ),
        "",
        *(f"{c.status}: {c.path}" for c in changes),
        "",
        f"{TRAILER}: {data['fromVersion']} -> {data['toVersion']}",
        f"Scaffolder-Task: {task_id}",
    ]
    return "\n".join(lines) + "\n"


@register
class TemplateUpgradeAction(Action):
    id = "template:upgrade"
    description = (
        "Three-way merges the changes between two recorded versions of a template "
        "(rendered with the service's answers) into the service's repository on a new "
        "branch rag-portal/upgrade-<version>; never pushes to the default branch."
    )
    input_schema = {
        "type": "object",
        "required": ["upgradeId", "entityRef", "locationUrl", "templateRef", "fromVersion",
                     "toVersion", "fromValues", "toValues"],
        "properties": {
            "upgradeId": {"type": "string"},
            "entityRef": {"type": "string"},
            "locationUrl": {"type": "string"},
            "templateRef": {"type": "string"},
            "fromVersion": {"type": "string"},
            "toVersion": {"type": "string"},
            "fromValues": {"type": "object"},
            "toValues": {"type": "object"},
            "droppedQuestions": {"type": "array", "items": {"type": "string"}},
            "adopted": {"type": ["boolean", "string"]},
        },
    }  # fmt: skip
    output_schema = {
        "type": "object",
        "properties": {
            "result": {"type": "string", "enum": ["merged", "conflicts", "up-to-date"]},
            "branch": {"type": ["string", "null"]},
            "commit": {"type": ["string", "null"]},
            "pushed": {"type": "boolean"},
            "files": {"type": "array"},
            "counts": {"type": "object"},
            "summary": {"type": "string"},
        },
    }

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        factory = ctx.session_factory
        if not ctx.dry_run:
            _still_ours(factory, input["upgradeId"], input["entityRef"])
        try:
            output = self._upgrade(ctx, input)
        except (RenderError, MergeError, CheckoutError) as exc:
            raise ActionError(str(exc)) from exc
        if not ctx.dry_run:
            release(
                factory,
                input["upgradeId"],
                result=output["result"],
                branch=output["branch"],
                file_counts=output["counts"],
            )
        return output

    def _render(
        self, ctx: ActionContext, ref: str, version: str, values: dict[str, Any], where: Path
    ) -> Path:
        template = version_store.materialize(ctx.settings, ctx.session_factory, ref, version)
        ctx.log(f"rendering {template.ref} {version}")
        return rendering.render(
            ctx.settings,
            ctx.session_factory,
            template,
            values,
            user_ref=ctx.user_ref,
            workspace=where,
            log=ctx.log,
        )

    def _upgrade(self, ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
        source, target = data["fromVersion"], data["toVersion"]
        branch = branch_name(target)
        published = parse_contents_url(data["locationUrl"], ctx.settings)
        default_branch = published.ref
        if branch == default_branch:
            raise ActionError(f"refusing to push to the default branch {default_branch}")
        with tempfile.TemporaryDirectory(prefix=".upgrade-", dir=ctx.workspace.parent) as tmp:
            scratch = Path(tmp)
            ref = data["templateRef"]
            base_root = self._render(ctx, ref, source, data["fromValues"], scratch / "base")
            target_root = self._render(ctx, ref, target, data["toValues"], scratch / "target")
            repository = replace(published, path="")  # the repository, not catalog-info.yaml
            repo = UpgradeRepository.open(scratch, repository, ctx.settings)
            head = repo.fetch(default_branch)
            if head is None:
                raise ActionError(f"the repository has no branch {default_branch}")
            label = f"template-{target}"
            merged = repo.merge(
                base=repo.write_folder(base_root),
                target=repo.write_folder(target_root),
                ours_head=head,
                default_branch=default_branch,
                target_label=label,
            )
            recorded = answers.Answers(data["templateRef"], target, data["toValues"])
            tree = repo.with_file(merged.tree, answers.PATH, recorded.to_yaml())
            ours_tree = repo.tree_of(head)
            changes = repo.changes(ours_tree, tree, merged.conflicts)
            for dropped in data.get("droppedQuestions") or []:
                ctx.log(f"answer {dropped!r} dropped: version {target} no longer asks it")
            if tree == ours_tree:
                ctx.log(f"{default_branch} already holds everything of {target}: nothing to do")
                return self._output("up-to-date", None, None, False, [], source, target)
            result = "conflicts" if merged.conflicts else "merged"
            for change in changes:
                origin = f" (renamed from {change.renamed_from})" if change.renamed_from else ""
                ctx.log(f"{change.status:<10} {change.path}{origin}")
            pushed, commit = self._publish(
                ctx, repo, branch, head, tree, _message(data, result, changes, ctx.task_id)
            )
        return self._output(result, branch, commit, pushed, changes, source, target)

    def _publish(
        self,
        ctx: ActionContext,
        repo: UpgradeRepository,
        branch: str,
        head: str,
        tree: str,
        message: str,
    ) -> tuple[bool, str]:
        existing = repo.fetch(branch)
        if existing is not None:
            if repo.tree_of(existing) == tree and repo.parent_of(existing) == head:
                ctx.log(f"branch {branch} already holds this upgrade: nothing pushed")
                return False, existing
            if not is_portal_commit(repo.message_of(existing)):
                raise ActionError(
                    f"branch {branch} has commits that are not the portal's: merge or delete "
                    "it, then upgrade again"
                )
            ctx.log(f"replacing the portal's earlier {branch} (the default branch moved)")
        commit = repo.commit(tree, message, head)
        if ctx.dry_run:
            ctx.log(f"dry run: would push {branch} at {commit[:12]}")
            return False, commit
        repo.push(commit, branch, existing)
        ctx.log(f"pushed {branch} at {commit[:12]} (the default branch is unchanged)")
        return True, commit

    @staticmethod
    def _output(
        result: str,
        branch: str | None,
        commit: str | None,
        pushed: bool,
        changes: list[Any],
        source: str,
        target: str,
    ) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for change in changes:
            counts[change.status] = counts.get(change.status, 0) + 1
        if result == "up-to-date":
            summary = f"already on {target}: nothing to merge"
        else:
            listed = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            summary = f"{source} -> {target} on {branch}: {listed}"
        return {
            "result": result,
            "branch": branch,
            "commit": commit,
            "pushed": pushed,
            "files": [c.as_dict() for c in changes],
            "counts": counts,
            "summary": summary,
        }
