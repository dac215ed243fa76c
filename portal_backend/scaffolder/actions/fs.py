"""fs:delete and fs:rename inside the task workspace (paths may not leave it)."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import Any

from portal_backend.scaffolder.actions.base import Action, ActionContext, ActionError, register


def inside(workspace: Path, relative: str) -> Path:
    """The path within the workspace; anything escaping it (``..``, absolute) is refused."""
    root = workspace.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise ActionError(f"path {relative!r} is outside the workspace")
    return target


@register
class FsDelete(Action):
    id = "fs:delete"
    description = "Deletes files or folders (glob patterns) from the workspace."
    input_schema = {
        "type": "object",
        "required": ["files"],
        "properties": {"files": {"type": "array", "items": {"type": "string"}}},
    }

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        root = ctx.workspace.resolve()
        for pattern in input["files"]:
            inside(root, pattern)  # the pattern itself may not point outside
            for match in sorted(glob.glob(str(root / pattern), recursive=True), reverse=True):
                path = inside(root, str(Path(match).relative_to(root)))
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                ctx.log(f"deleted {path.relative_to(root)}")
        return {}


@register
class FsRename(Action):
    id = "fs:rename"
    description = "Renames files or folders in the workspace."
    input_schema = {
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {
                        "from": {"type": "string"},
                        "to": {"type": "string"},
                        "overwrite": {"type": "boolean"},
                    },
                },
            }
        },
    }

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        for item in input["files"]:
            source = inside(ctx.workspace, item["from"])
            target = inside(ctx.workspace, item["to"])
            if not source.exists():
                raise ActionError(f"fs:rename: {item['from']} does not exist")
            if target.exists():
                if not item.get("overwrite"):
                    raise ActionError(f"fs:rename: {item['to']} exists (set overwrite: true)")
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            ctx.log(f"renamed {item['from']} -> {item['to']}")
        return {}
