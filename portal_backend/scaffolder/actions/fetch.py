"""fetch:cookiecutter: render a cookiecutter skeleton with the task's values.

Values are handed to cookiecutter as data, never as template text: cookiecutter's own
``prompt_for_config`` would render every value (so ``{{ ... }}`` typed into a form would
run), therefore only the skeleton's own defaults are rendered here and user values are
substituted verbatim.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import CookiecutterException
from cookiecutter.generate import generate_context, generate_files
from cookiecutter.prompt import render_variable
from jinja2 import TemplateError

from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.scaffolder.actions.fs import inside
from portal_backend.settings import Settings


def _skeleton_dir(url: str, ctx: ActionContext) -> Path:
    if "://" in url and not url.startswith("file://"):
        raise ActionError(
            f"fetch:cookiecutter: {url!r}: only skeletons stored beside the template "
            "(relative url such as ./skeleton) or in a trusted template folder are supported"
        )
    path = Path(url.removeprefix("file://"))
    if not path.is_absolute():
        if ctx.template_dir is None:
            raise ActionError(
                f"fetch:cookiecutter: relative url {url!r} needs a template stored in a folder"
            )
        path = ctx.template_dir / path
    path = path.resolve()
    allowed = [ctx.settings.templates_dir, *ctx.settings.scaffolder_trusted_template_roots]
    if ctx.template_dir is not None:
        allowed.append(ctx.template_dir)
    if not any(path.is_relative_to(Path(root).resolve()) for root in allowed):
        raise ActionError(f"fetch:cookiecutter: {url!r} is outside the template folders")
    if not (path / "cookiecutter.json").is_file():
        raise ActionError(f"fetch:cookiecutter: {url!r} has no cookiecutter.json")
    return path


def build_context(skeleton: Path, values: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The cookiecutter context: user values verbatim, skeleton defaults rendered."""
    context = generate_context(context_file=str(skeleton / "cookiecutter.json"))
    context["cookiecutter"].update(extra)
    env = StrictEnvironment(context=context)
    rendered: OrderedDict[str, Any] = OrderedDict()
    for key, raw in context["cookiecutter"].items():
        if key in values:
            rendered[key] = values[key]
        elif key.startswith("_") and not key.startswith("__"):
            rendered[key] = raw
        elif isinstance(raw, list):
            rendered[key] = render_variable(env, raw[0], rendered) if raw else ""
        else:
            rendered[key] = render_variable(env, raw, rendered)
    for key, value in values.items():
        rendered.setdefault(key, value)
    return {"cookiecutter": rendered}


def _check_paths(skeleton: Path, context: dict[str, Any], output: Path) -> None:
    """Every rendered file name must stay inside the output folder (no ``..`` from values)."""
    env = StrictEnvironment(context=context)
    for path in skeleton.rglob("*"):
        relative = path.relative_to(skeleton).as_posix()
        if relative.startswith("hooks") or "{{" not in relative:
            continue
        name = env.from_string(relative).render(**context)
        target = (output / name).resolve()
        if not target.is_relative_to(output.resolve()) or ".." in Path(name).parts:
            raise ActionError(
                f"fetch:cookiecutter: a value makes the path {name!r} leave the output"
            )


@register
class FetchCookiecutter(Action):
    id = "fetch:cookiecutter"
    description = (
        "Renders a cookiecutter skeleton (url relative to the template, e.g. ./skeleton) with "
        "values into the workspace (targetPath)."
    )
    input_schema = {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "minLength": 1},
            "targetPath": {"type": "string"},
            "values": {"type": "object"},
            "copyWithoutRender": {"type": "array", "items": {"type": "string"}},
            "extensions": {"type": "array", "items": {"type": "string"}},
            "imageName": {"type": "string", "description": "ignored: no Docker is used"},
        },
    }
    output_schema = {"type": "object", "properties": {"targetPath": {"type": "string"}}}

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        if not isinstance(input.get("values", {}), dict):
            return [FieldError("input.values", "values must be an object")]
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        skeleton = _skeleton_dir(input["url"], ctx)
        target_rel = input.get("targetPath") or "."
        target = (
            ctx.workspace.resolve()
            if target_rel in (".", "./", "")
            else inside(ctx.workspace, target_rel)
        )
        extra: dict[str, Any] = {}
        if input.get("copyWithoutRender"):
            extra["_copy_without_render"] = input["copyWithoutRender"]
        if input.get("extensions"):
            extra["_extensions"] = input["extensions"]
        values = dict(input.get("values") or {})
        hooks = (skeleton / "hooks").is_dir()
        if hooks and not ctx.template_trusted:
            ctx.log("cookiecutter hooks skipped: the template is not from a trusted folder")
        with tempfile.TemporaryDirectory(dir=ctx.workspace.parent, prefix=".render-") as out:
            try:
                context = build_context(skeleton, values, extra)
                context["cookiecutter"]["_template"] = str(skeleton)
                context["cookiecutter"]["_output_dir"] = out
                _check_paths(skeleton, context, Path(out))
                project = Path(
                    generate_files(
                        repo_dir=str(skeleton),
                        context=context,
                        output_dir=out,
                        overwrite_if_exists=True,
                        accept_hooks=hooks and ctx.template_trusted,
                    )
                )
            except (CookiecutterException, TemplateError, json.JSONDecodeError) as exc:
                raise ActionError(f"fetch:cookiecutter: cannot render the skeleton: {exc}") from exc
            target.mkdir(parents=True, exist_ok=True)
            # Re-running the step replaces what a previous attempt wrote.
            for item in project.iterdir():
                destination = target / item.name
                if destination.is_dir() and not destination.is_symlink():
                    shutil.rmtree(destination)
                elif destination.exists():
                    destination.unlink()
                shutil.move(str(item), destination)
        count = sum(1 for p in target.rglob("*") if p.is_file())
        ctx.log(f"rendered {skeleton.name} into {target_rel} ({count} files)")
        return {"targetPath": target_rel}
