"""The answers file: ``.rag-portal/answers.yml`` in every generated repository.

Like copier's answers file, it records what the repository was generated from: the
template ref, its version and the form answers, so an upgrade can render the same
answers with the recorded version and with the new one. Secrets never go in: task
secrets are not answers at all, and form fields marked secret (``ui:field: Secret``,
``ui:widget: password``, ``format: password``, Backstage's conventions) are left out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

PATH = ".rag-portal/answers.yml"
HEADER = (
    "# Written by rag-portal: the template and the answers this repository was generated\n"
    "# from. Template upgrades read it (ragportal services upgrade NAME); keep it as is.\n"
)


class AnswersFileError(ValueError):
    pass


@dataclass(frozen=True)
class Answers:
    template: str
    version: str | None
    values: dict[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> str:
        body = {"template": self.template, "version": self.version, "answers": self.values}
        return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def parse(text: str) -> Answers:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AnswersFileError(f"{PATH} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("template"), str):
        raise AnswersFileError(f"{PATH} must hold template, version and answers")
    values = data.get("answers") or {}
    if not isinstance(values, dict):
        raise AnswersFileError(f"{PATH}: answers must be a mapping")
    version = data.get("version")
    return Answers(data["template"], str(version) if version else None, values)


def _is_secret(schema: dict[str, Any]) -> bool:
    return (
        schema.get("ui:field") == "Secret"
        or schema.get("ui:widget") == "password"
        or schema.get("format") == "password"
    )


def _pages(parameters: Any) -> list[dict[str, Any]]:
    pages = [parameters] if isinstance(parameters, dict) else list(parameters or [])
    return [p for p in pages if isinstance(p, dict)]


def _properties(page: dict[str, Any]) -> dict[str, Any]:
    """A page's fields, those of its if/then/else and dependencies branches included."""
    found = dict(page.get("properties") or {})
    for branch in ("then", "else"):
        found.update((page.get(branch) or {}).get("properties") or {})
    for dependency in (page.get("dependencies") or {}).values():
        if isinstance(dependency, dict):
            for option in dependency.get("oneOf") or [dependency]:
                found.update((option or {}).get("properties") or {})
    return {k: v for k, v in found.items() if isinstance(v, dict)}


def questions(parameters: Any) -> dict[str, dict[str, Any]]:
    """Every top-level form field of a template (name -> schema), all pages together."""
    found: dict[str, dict[str, Any]] = {}
    for page in _pages(parameters):
        for name, schema in _properties(page).items():
            found.setdefault(name, {}).update(schema)
    return found


def secret_fields(parameters: Any) -> set[str]:
    return {name for name, schema in questions(parameters).items() if _is_secret(schema)}


def recordable(parameters: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The answers worth recording: everything but the fields marked secret."""
    secret = secret_fields(parameters)
    return {k: copy.deepcopy(v) for k, v in values.items() if k not in secret}


def for_new_version(parameters: Any, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Answers kept for a template version whose form is ``parameters``: the questions it
    no longer asks are dropped (returned second, sorted)."""
    asked = questions(parameters)
    kept = {k: copy.deepcopy(v) for k, v in values.items() if k in asked}
    return kept, sorted(set(values) - set(asked))
