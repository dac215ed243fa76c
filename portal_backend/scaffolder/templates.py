"""Templates: loading ``template.yaml`` files, their form schema and value validation.

A template is a Backstage ``scaffolder.backstage.io/v1beta3`` Template entity. It is
looked up by ref in the catalog (where the templates of ``scaffolder_templates/`` are
registered at start-up); its folder comes from the entity's managed-by-location
annotation so a relative skeleton URL (``./skeleton``) resolves beside the file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from catalog.errors import ErrorDetail, InputError, NotFoundError
from portal_backend.settings import Settings

TEMPLATE_API_VERSION = "scaffolder.backstage.io/v1beta3"
LOCATION_ANNOTATION = "backstage.io/managed-by-location"


@dataclass
class Template:
    ref: str
    entity: dict[str, Any]
    directory: Path | None
    # Hooks of a cookiecutter skeleton run only for templates the operator trusts.
    trusted: bool

    @property
    def spec(self) -> dict[str, Any]:
        return self.entity.get("spec") or {}

    @property
    def pages(self) -> list[dict[str, Any]]:
        parameters = self.spec.get("parameters") or []
        return [parameters] if isinstance(parameters, dict) else list(parameters)

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.spec.get("steps") or [])

    def snapshot(self) -> dict[str, Any]:
        """What a task keeps of its template, so later edits do not change a running task."""
        return {
            "ref": self.ref,
            "title": self.entity.get("metadata", {}).get("title"),
            # Template-level settings (e.g. rag-portal.io/image-registry) as submitted.
            "annotations": copy.deepcopy(self.entity.get("metadata", {}).get("annotations") or {}),
            "parameters": copy.deepcopy(self.spec.get("parameters") or []),
            "steps": copy.deepcopy(self.steps),
            "output": copy.deepcopy(self.spec.get("output") or {}),
            "directory": str(self.directory) if self.directory else None,
            "trusted": self.trusted,
        }


def template_ref(namespace: str, name: str) -> str:
    return f"template:{namespace}/{name}".lower()


def parse_ref(ref: str) -> tuple[str, str]:
    """``template:ns/name`` (kind and namespace optional) -> (namespace, name)."""
    kind, sep, rest = ref.partition(":")
    if not sep:
        kind, rest = "template", ref
    if kind.lower() != "template":
        raise InputError(
            f"templateRef {ref!r} must refer to a Template (template:<namespace>/<name>)",
            [ErrorDetail("templateRef", "kind must be 'template'")],
        )
    namespace, sep, name = rest.partition("/")
    if not sep:
        namespace, name = "default", rest
    if not name:
        raise InputError(f"templateRef {ref!r} has no name", [ErrorDetail("templateRef", "")])
    return namespace, name


def load_template_file(path: Path) -> dict[str, Any]:
    entity = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(entity, dict) or entity.get("kind") != "Template":
        raise ValueError(f"{path} is not a Template entity")
    return entity


def _is_trusted(directory: Path | None, settings: Settings) -> bool:
    if directory is None:
        return False
    roots = [settings.templates_dir, *settings.scaffolder_trusted_template_roots]
    resolved = directory.resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def _directory_of(entity: dict[str, Any]) -> Path | None:
    location = (entity.get("metadata", {}).get("annotations") or {}).get(LOCATION_ANNOTATION, "")
    kind, _, target = location.partition(":")
    if kind == "file" and target:
        return Path(target).parent
    return None


def _from_folder(settings: Settings, namespace: str, name: str) -> Template | None:
    root = Path(settings.templates_dir)
    for path in sorted(root.glob("*/template.yaml")):
        try:
            entity = load_template_file(path)
        except (ValueError, yaml.YAMLError):
            continue
        meta = entity.get("metadata") or {}
        if (meta.get("name") or "").lower() == name.lower() and (
            meta.get("namespace") or "default"
        ).lower() == namespace.lower():
            return Template(template_ref(namespace, name), entity, path.parent, True)
    return None


def find_template(settings: Settings, session: Any, ref: str) -> Template:
    """The template for ``ref``: from the catalog when it holds it, else from templates_dir."""
    namespace, name = parse_ref(ref)
    from portal_backend.scaffolder import catalog_port

    entity = catalog_port.get_entity(session, "template", namespace, name)
    if entity is not None:
        directory = _directory_of(entity)
        return Template(
            template_ref(namespace, name), entity, directory, _is_trusted(directory, settings)
        )
    template = _from_folder(settings, namespace, name)
    if template is None:
        raise NotFoundError(f"template {template_ref(namespace, name)} not found")
    return template


def parameter_schema(template: Template) -> dict[str, Any]:
    """Backstage's ``parameter-schema`` response: the form, page by page."""
    meta = template.entity.get("metadata") or {}
    return {
        "title": meta.get("title") or meta.get("name"),
        "description": meta.get("description"),
        "steps": [
            {
                "title": page.get("title") or f"Page {i + 1}",
                "description": page.get("description"),
                "schema": page,
            }
            for i, page in enumerate(template.pages)
        ],
    }


def _strip_ui(schema: Any) -> Any:
    """``ui:*`` keys are form hints; JSON Schema ignores unknown keys but we drop them anyway."""
    if isinstance(schema, dict):
        return {k: _strip_ui(v) for k, v in schema.items() if not str(k).startswith("ui:")}
    if isinstance(schema, list):
        return [_strip_ui(v) for v in schema]
    return schema


def _error_message(schema: Any, keyword: str) -> str | None:
    """A field's own words for a failed keyword: ``errorMessage`` as ajv-errors spells it,
    one string for every keyword or ``{pattern: "...", required: "..."}``."""
    custom = schema.get("errorMessage") if isinstance(schema, dict) else None
    if isinstance(custom, str):
        return custom
    if isinstance(custom, dict) and isinstance(custom.get(keyword), str):
        return str(custom[keyword])
    return None


def _fill_defaults(schema: dict[str, Any], values: dict[str, Any]) -> None:
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if key not in values and "default" in prop:
            values[key] = copy.deepcopy(prop["default"])
        if isinstance(values.get(key), dict) and prop.get("type") == "object":
            _fill_defaults(prop, values[key])


def with_defaults(template: Template, values: dict[str, Any]) -> dict[str, Any]:
    """The values with every omitted field that has a schema default filled in (as the
    form would have), so API callers and form users get the same task."""
    filled = copy.deepcopy(values)
    for page in template.pages:
        _fill_defaults(page, filled)
    return filled


def validate_values(template: Template, values: Any) -> None:
    """Every page's schema applies to the one values object; all errors at once."""
    if not isinstance(values, dict):
        raise InputError("values must be an object", [ErrorDetail("values", "expected an object")])
    details: list[ErrorDetail] = []
    for page in template.pages:
        validator = Draft7Validator(_strip_ui(page))
        for error in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
            path = ".".join(str(p) for p in error.absolute_path)
            message = error.message
            if error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else ""
                path = ".".join(p for p in (path, missing) if p)
                field_schema = (error.schema.get("properties") or {}).get(missing) or {}
                message = _error_message(field_schema, "required") or message
            else:
                message = _error_message(error.schema, str(error.validator)) or message
            details.append(ErrorDetail(f"values.{path}" if path else "values", message))
    if details:
        raise InputError(
            f"values do not match the template's form: {len(details)} error(s)", details
        )
