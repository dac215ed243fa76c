"""Rendering a template (a recorded version) with a set of answers into a folder: the
files a repository generated from it would have held, before any team edit.

The template's own steps run, as a dry run (the same actions a create task runs, with no
repository, catalog or cluster change), up to its first publish step; what they left in
the workspace, under that step's ``sourcePath``, is the repository's content.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from portal_backend.scaffolder import engine, versions
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.fs import inside
from portal_backend.scaffolder.templates import Template, with_defaults
from portal_backend.settings import Settings


class RenderError(Exception):
    pass


def _is_publish(step: dict[str, Any]) -> bool:
    return str(step.get("action", "")).startswith("publish:")


def render(
    settings: Settings,
    factory: sessionmaker[Session],
    template: Template,
    values: dict[str, Any],
    *,
    user_ref: str,
    workspace: Path,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """Render ``template`` with ``values`` into ``workspace``; returns the folder that is
    the repository's root (the publish step's sourcePath, else the workspace)."""
    load_actions()
    workspace.mkdir(parents=True, exist_ok=True)
    run = engine.run_steps_dry(
        settings,
        factory,
        template=template,
        values=with_defaults(template, values),
        secrets=None,
        user_ref=user_ref,
        workspace=workspace,
        stop_before=_is_publish,
    )
    for line in run.logs:
        message = str(line["body"]["message"])
        if "failed" in message or "rendered" in message:
            log(message)
    if run.failed:
        version = versions.version_of(template.entity) or ""
        raise RenderError(f"cannot render {template.ref} {version}: {run.failed}")
    source = str((run.stopped_at or {}).get("sourcePath") or "").strip("/")
    return inside(workspace, source) if source not in ("", ".") else workspace
